"""Class-conditional pixel diffusion at 28x28 and the one `load_generator` entry point.

The shipped model is a small diffusers `UNet2DModel` whose class embedding has one extra "null"
class for classifier-free guidance, trained with v-prediction on a cosine schedule and sampled
with DPM-Solver++.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from .cpu import has_fast_bf16
from .data import NUM_CLASSES, resolve_class

MAX_IMAGES_PER_CALL = 1024
MAX_STEPS = 1000
MAX_GUIDANCE = 20.0
GENERATOR_CONFIG_NAME = "generator_config.json"
EVERY_STEP = (0.0, 1.0)  # the guidance interval that guides every sampling step
# DPM-Solver++ (deterministic ODE) or its SDE form, which adds fresh noise at every step.
SOLVERS = ("dpmsolver++", "sde-dpmsolver++")


class ImageGenerator(Protocol):
    """What the validation loop, the bank builder and the app need from any backend."""

    def generate(self, class_index: int, n: int, *, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None) -> np.ndarray: ...


@dataclass
class UNetShape:
    """The architecture knobs of the compact UNet (everything else is fixed)."""

    block_out_channels: tuple[int, ...] = (32, 64, 96)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 16


@dataclass
class SamplingDefaults:
    steps: int = 12
    guidance: float = 3.0
    # Classifier-free guidance is applied only at timesteps t with low <= t / T <= high (T = training timesteps,
    # 1 = pure noise). Guiding the noisiest steps pulls samples towards a few typical layouts (Kynkaanniemi et
    # al. 2024, "Applying guidance in a limited interval"), and each unguided step costs half a guided one.
    guidance_interval: tuple[float, float] = EVERY_STEP
    solver: str = SOLVERS[0]

    def __post_init__(self) -> None:
        low, high = (float(bound) for bound in self.guidance_interval)
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"guidance_interval must be two numbers 0 <= low <= high <= 1, got {self.guidance_interval!r}.")
        self.guidance_interval = (low, high)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}.")

    @property
    def guides_everywhere(self) -> bool:
        return self.guidance_interval == EVERY_STEP


def build_unet(shape: UNetShape, num_classes: int = NUM_CLASSES) -> UNet2DModel:
    """A 28x28 RGB UNet; attention only at the 7x7 level, where it is cheap."""
    levels = len(shape.block_out_channels)
    return UNet2DModel(
        sample_size=28,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(shape.block_out_channels),
        down_block_types=("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
        layers_per_block=shape.layers_per_block,
        attention_head_dim=shape.attention_head_dim,
        norm_num_groups=shape.norm_num_groups,
        num_class_embeds=num_classes + 1,  # the last index is the unconditional "null" class
    )


def build_noise_scheduler() -> DDPMScheduler:
    """Cosine schedule (kinder to small images than linear) with v-prediction, which stays
    well-conditioned at the noisiest steps where epsilon-prediction's x0 estimate explodes."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", clip_sample=False)


def check_generation_args(class_index: int, n: int, seed: int | None, steps: int, guidance: float) -> int:
    """Validates the user-facing arguments; returns the class index."""
    tissue = resolve_class(class_index)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_IMAGES_PER_CALL:
        raise ValueError(f"n must be a whole number from 1 to {MAX_IMAGES_PER_CALL}, got {n!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63):
        raise ValueError(f"seed must be a whole number from 0 to 2**63-1 or None, got {seed!r}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.")
    if not isinstance(guidance, (int, float, np.floating)) or not 0.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"guidance must be a number from 0 to {MAX_GUIDANCE}, got {guidance!r}.")
    return tissue.index


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats [N, 3, H, W] -> uint8 [N, H, W, 3]."""
    scaled = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


class ClassConditionalPipeline:
    """Classifier-free-guided DPM-Solver++ sampling from a class-conditional UNet."""

    def __init__(self, unet: UNet2DModel, scheduler_config: dict) -> None:
        self.unet = unet.eval()
        self.scheduler_config = scheduler_config
        self.null_class = unet.config.num_class_embeds - 1

    def make_scheduler(self, solver: str = SOLVERS[0]) -> DPMSolverMultistepScheduler:
        # "trailing" spacing starts sampling at the very last timestep (pure noise), which the
        # model was trained on; the default spacing would start from a partly denoised level.
        return DPMSolverMultistepScheduler.from_config(
            self.scheduler_config, algorithm_type=solver, solver_order=2,
            timestep_spacing="trailing", final_sigmas_type="zero")

    @torch.no_grad()
    def __call__(self, class_labels: torch.Tensor, steps: int, guidance: float,
                 generator: torch.Generator | None = None, bf16: bool | None = None,
                 guidance_interval: tuple[float, float] = EVERY_STEP, solver: str = SOLVERS[0]) -> torch.Tensor:
        """`bf16=None` uses bfloat16 autocast only where the CPU runs it natively; `guidance_interval` and
        `solver` as in `SamplingDefaults` (outside the interval the class-conditional prediction is used alone).
        The SDE solver's per-step noise comes from `generator` too, so a seed still fixes the images."""
        bf16 = has_fast_bf16() if bf16 is None else bf16
        scheduler = self.make_scheduler(solver)
        scheduler.set_timesteps(steps)
        n = len(class_labels)
        sample = torch.randn((n, 3, 28, 28), generator=generator)
        both_labels = torch.cat([class_labels, torch.full_like(class_labels, self.null_class)])
        low, high = guidance_interval
        for t in scheduler.timesteps:
            level = float(t) / scheduler.config.num_train_timesteps
            guided = guidance != 1.0 and low <= level <= high
            model_input, labels = (torch.cat([sample, sample]), both_labels) if guided else (sample, class_labels)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = self.unet(model_input, t, class_labels=labels).sample.float()
            if guided:
                conditional, unconditional = output.chunk(2)
                output = unconditional + guidance * (conditional - unconditional)
            sample = scheduler.step(output, t, sample, generator=generator).prev_sample
        return sample


class PixelDiffusionGenerator:
    """The shipped backend: `generate(class, n)` -> uint8 [n, 28, 28, 3]."""

    def __init__(self, unet: UNet2DModel, scheduler_config: dict, defaults: SamplingDefaults | None = None,
                 batch_size: int = 64, bf16: bool | None = None) -> None:
        self.pipeline = ClassConditionalPipeline(unet, scheduler_config)
        self.defaults = defaults or SamplingDefaults()
        self.batch_size = batch_size
        # Images depend on the precision, so a seed repeats an image only at the same one; None: native bf16 only.
        self.bf16 = has_fast_bf16() if bf16 is None else bf16

    def generate(self, class_index: int, n: int, *, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None) -> np.ndarray:
        steps = self.defaults.steps if steps is None else steps
        guidance = self.defaults.guidance if guidance is None else guidance
        class_index = check_generation_args(class_index, n, seed, steps, guidance)
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
        batches = []
        for start in range(0, n, self.batch_size):
            count = min(self.batch_size, n - start)
            labels = torch.full((count,), class_index, dtype=torch.long)
            batches.append(to_uint8(self.pipeline(labels, steps, float(guidance), generator, bf16=self.bf16,
                                                  guidance_interval=self.defaults.guidance_interval,
                                                  solver=self.defaults.solver)))
        return np.concatenate(batches)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """unet/ (fp16 safetensors + config), scheduler/, and generator_config.json."""
        folder = Path(path)
        half = copy.deepcopy(self.pipeline.unet).to(torch.float16)
        half.save_pretrained(folder / "unet", safe_serialization=True)
        DDPMScheduler.from_config(self.pipeline.scheduler_config).save_pretrained(folder / "scheduler")
        (folder / GENERATOR_CONFIG_NAME).write_text(
            json.dumps({"backend": "pixel-diffusion", "sampling_defaults": asdict(self.defaults)}, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> PixelDiffusionGenerator:
        folder = Path(path)
        try:
            unet = UNet2DModel.from_pretrained(folder / "unet", torch_dtype=torch.float32)
            scheduler_config = dict(DDPMScheduler.load_config(folder / "scheduler"))
            settings = json.loads((folder / GENERATOR_CONFIG_NAME).read_text())
            defaults = SamplingDefaults(**settings.get("sampling_defaults", {}))
        except Exception as error:
            raise ValueError(
                f"Generator in {folder} is corrupt or incomplete ({error}). Rebuild it with "
                "`python -m training.train_generator` or restore assets/generator/."
            ) from error
        return cls(unet, scheduler_config, defaults)


def write_sampling_defaults(folder: str | os.PathLike, defaults: SamplingDefaults) -> None:
    """Replaces only the sampling defaults in a generator folder's generator_config.json (either backend)."""
    config_file = Path(folder) / GENERATOR_CONFIG_NAME
    config = json.loads(config_file.read_text())
    config["sampling_defaults"] = asdict(SamplingDefaults(**asdict(defaults)))  # re-checked before it is stored
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def looks_like_hub_id(text: str | os.PathLike) -> bool:
    """True for "owner/name" strings that are not an existing or explicitly relative/absolute path."""
    text = str(text)
    return not Path(text).expanduser().exists() and not text.startswith((".", "/", "~")) and text.count("/") == 1


def load_generator(path_or_hub_id: str | os.PathLike, **kwargs) -> ImageGenerator:
    """Loads either backend from a local folder, or the LoRA backend from a hub id.

    A folder with generator_config.json is read as it says; `kwargs` go to the LoRA backend
    (e.g. `base_model=`, `device=`). Missing folders raise FileNotFoundError, corrupt ones ValueError.
    """
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        config_file = path / GENERATOR_CONFIG_NAME
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file} is missing: {path} is not a PathGen generator folder.")
        try:
            backend = json.loads(config_file.read_text())["backend"]
        except Exception as error:
            raise ValueError(f"{config_file} is corrupt ({error}).") from error
        if backend == "pixel-diffusion":
            return PixelDiffusionGenerator.from_pretrained(path)
        if backend == "sd-lora":
            from .lora import LoraGenerator

            return LoraGenerator.from_pretrained(path, **kwargs)
        raise ValueError(f"{config_file} names an unknown backend {backend!r}.")
    if not looks_like_hub_id(path_or_hub_id):
        raise FileNotFoundError(
            f"Generator folder {path} not found. Restore assets/generator/ or retrain with "
            "`python -m training.train_generator`.")
    from .lora import LoraGenerator

    return LoraGenerator.from_pretrained(str(path_or_hub_id), **kwargs)
