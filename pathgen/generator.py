"""The pixel backend: class-conditional diffusion at 28x28.

The shipped model is a small diffusers `UNet2DModel` whose class embedding has one extra "null"
class for classifier-free guidance, trained with v-prediction on a cosine schedule and sampled
with DPM-Solver++.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

from .cpu import has_fast_bf16
from .data import NUM_CLASSES
from .discriminator import FOLDER_NAME as DISCRIMINATOR_FOLDER
from .discriminator import MAX_SIGMA, MIN_SIGMA, REBUILD, NoisyTileDiscriminator, corrected_tiles, logit_gradient
from .generation import (
    EVERY_STEP,
    PROFILES,
    SOLVERS,
    BatchedGenerator,
    SamplingDefaults,
    SamplingProfiles,
    read_generator_config,
    write_generator_config,
)
from .guided import first_at_or_below, start_index, to_model_range

BACKEND = "pixel-diffusion"
MAIN_MODEL = "unet"  # the subfolder with the network every profile without a model of its own samples with
ATTACH = "`python -m training.attach_model`"
KARRAS_SIGMA_MAX = 80.0  # EDM's; the cosine schedule's last level (sigma ~ 2e4) would waste steps near pure noise
KARRAS_RHO = 7.0


@dataclass
class UNetShape:
    """The architecture knobs of the compact UNet (everything else is fixed)."""

    block_out_channels: tuple[int, ...] = (32, 64, 96)
    layers_per_block: int = 1
    attention_head_dim: int = 32
    norm_num_groups: int = 16


def portable_copy(unet: UNet2DModel) -> UNet2DModel:
    """A copy whose config omits where the weights were loaded from, so that an export's config.json is the same
    file whichever machine or folder it was made from."""
    config = {key: value for key, value in unet.config.items() if key != "_name_or_path"}
    clone = UNet2DModel.from_config(config)
    clone.load_state_dict(unet.state_dict())
    return clone


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


def edm_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """EDM's noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) of each timestep, in the dtype given (the
    sampler's timesteps are picked in float64, training's draws in the schedule's float32)."""
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def karras_timesteps(scheduler_config: dict, steps: int) -> list[int]:
    """`steps` distinct timesteps: the first at pure noise, the rest at noise levels spaced as in Karras et al.
    (2022) from sigma 80 down to the schedule's smallest, so the final steps are small."""
    alpha_bar = DDPMScheduler.from_config(scheduler_config).alphas_cumprod.double()
    log_levels = edm_sigmas(alpha_bar).log()
    low, high = float(log_levels[0].exp()), min(KARRAS_SIGMA_MAX, float(log_levels[-1].exp()))
    ramp = torch.linspace(0, 1, max(steps - 1, 1), dtype=torch.float64)
    sigmas = (high ** (1 / KARRAS_RHO) + ramp * (low ** (1 / KARRAS_RHO) - high ** (1 / KARRAS_RHO))) ** KARRAS_RHO
    nearest = (sigmas.log()[:, None] - log_levels[None, :]).abs().argmin(dim=1).tolist()
    timesteps = [len(alpha_bar) - 1]
    for t in nearest[: steps - 1]:
        timesteps.append(min(int(t), timesteps[-1] - 1))  # strictly decreasing, even where levels crowd
    # Steps crowded past t = 0 are spread back up: n distinct timesteps always exist below the first.
    timesteps[-1] = max(timesteps[-1], 0)
    for i in range(len(timesteps) - 1, 0, -1):
        timesteps[i - 1] = max(timesteps[i - 1], timesteps[i] + 1)
    return timesteps[:steps]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats [N, 3, H, W] -> uint8 [N, H, W, 3]."""
    scaled = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


class ClassConditionalPipeline:
    """Classifier-free-guided DPM-Solver++ sampling from a class-conditional UNet, optionally corrected by a
    discriminator (pathgen.discriminator)."""

    def __init__(self, unet: UNet2DModel, scheduler_config: dict, discriminator: torch.nn.Module | None = None) -> None:
        self.unet = unet.eval()
        self.scheduler_config = scheduler_config
        self.null_class = unet.config.num_class_embeds - 1
        self.discriminator = discriminator.eval() if discriminator is not None else None

    def discriminator_corrected(self, v: torch.Tensor, sample: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                                weight: float, scheduler: DPMSolverMultistepScheduler) -> torch.Tensor:
        """v - weight * (sigma / alpha) * grad logit D: the real data's score where the discriminator is right; tiles
        of classes the discriminator was not trained on keep v."""
        if self.discriminator is None:
            raise ValueError(f"This generator has no discriminator for discriminator guidance; train one with {REBUILD}.")
        sigma = float(edm_sigmas(scheduler.alphas_cumprod[int(t)].double()))
        corrected = corrected_tiles(self.discriminator, labels)
        if not MIN_SIGMA <= sigma <= MAX_SIGMA or not corrected.any():  # levels or classes it was not trained on
            return v
        gradient = logit_gradient(self.discriminator, sample, sigma, labels) * corrected.view(-1, 1, 1, 1)
        return v - weight * sigma * gradient

    def make_scheduler(self, solver: str = SOLVERS[0], noise_spacing: str = "trailing") -> DPMSolverMultistepScheduler:
        # "trailing" spacing starts sampling at the very last timestep (pure noise), which the
        # model was trained on; the default spacing would start from a partly denoised level.
        return DPMSolverMultistepScheduler.from_config(
            self.scheduler_config, algorithm_type=solver, solver_order=2, timestep_spacing="trailing",
            final_sigmas_type="zero")

    def set_timesteps(self, scheduler: DPMSolverMultistepScheduler, steps: int, noise_spacing: str) -> None:
        if noise_spacing == "karras":
            scheduler.set_timesteps(timesteps=karras_timesteps(self.scheduler_config, steps))
        else:
            scheduler.set_timesteps(steps)

    def guided_start(self, scheduler: DPMSolverMultistepScheduler, steps: int, strength: float, solver: str) -> int:
        """Where a start at `strength` joins `scheduler`'s timesteps: at the noise level that evenly spaced steps
        of the same count start from (diffusers' img2img rule), so one strength means one noise level whatever
        the spacing; Karras spacing's steps crowd the noisy end, and counting them would start far noisier."""
        even = self.make_scheduler(solver)
        self.set_timesteps(even, steps, "trailing")
        level = int(even.timesteps[start_index(steps, strength) * even.order])
        return first_at_or_below(scheduler.timesteps, level)

    @torch.no_grad()
    def __call__(self, class_labels: torch.Tensor, steps: int, guidance: float,
                 generator: torch.Generator | None = None, bf16: bool | None = None,
                 guidance_interval: tuple[float, float] = EVERY_STEP, solver: str = SOLVERS[0],
                 noise_spacing: str = "trailing", start: torch.Tensor | None = None,
                 strength: float = 1.0, discriminator_guidance: float = 0.0) -> torch.Tensor:
        """`bf16=None` uses bfloat16 autocast only where the CPU runs it natively; `guidance_interval` and
        `solver` and `noise_spacing` as in `SamplingDefaults` (outside the interval the class-conditional prediction is used alone).
        The SDE solver's per-step noise comes from `generator` too, so a seed still fixes the images.
        `start` ([n, 3, 28, 28] in [-1, 1]) is noised to the level `strength` and only the rest of the schedule
        runs (SDEdit; see pathgen.guided); without it sampling starts from pure noise. `discriminator_guidance`
        weights the discriminator's correction (0: none)."""
        bf16 = has_fast_bf16() if bf16 is None else bf16
        scheduler = self.make_scheduler(solver)
        self.set_timesteps(scheduler, steps, noise_spacing)
        n = len(class_labels)
        sample = torch.randn((n, 3, 28, 28), generator=generator)
        timesteps = scheduler.timesteps
        if start is not None:
            first = self.guided_start(scheduler, steps, strength, solver)
            timesteps = timesteps[first:]
            scheduler.set_begin_index(first)
            sample = scheduler.add_noise(start.float(), sample, timesteps[:1])
        both_labels = torch.cat([class_labels, torch.full_like(class_labels, self.null_class)])
        low, high = guidance_interval
        for t in timesteps:
            level = float(t) / scheduler.config.num_train_timesteps
            guided = guidance != 1.0 and low <= level <= high
            model_input, labels = (torch.cat([sample, sample]), both_labels) if guided else (sample, class_labels)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = self.unet(model_input, t, class_labels=labels).sample.float()
            if guided:
                conditional, unconditional = output.chunk(2)
                output = unconditional + guidance * (conditional - unconditional)
            if discriminator_guidance:
                output = self.discriminator_corrected(output, sample, t, class_labels, discriminator_guidance, scheduler)
            sample = scheduler.step(output, t, sample, generator=generator).prev_sample
        return sample


class PixelDiffusionGenerator(BatchedGenerator):
    """The shipped backend: `generate(class, n, profile=...)` -> uint8 [n, 28, 28, 3].

    A profile may sample with a network of its own (`SamplingDefaults.model`, a subfolder beside `unet/`), so the
    offline `bank` can use a bigger UNet than the app's `live` generation can afford, and with networks of their
    own for named classes (`SamplingDefaults.class_models`)."""

    def __init__(self, unet: UNet2DModel, scheduler_config: dict, profiles: SamplingProfiles | None = None,
                 batch_size: int = 64, bf16: bool | None = None,
                 discriminator: NoisyTileDiscriminator | None = None,
                 profile_unets: dict[str, UNet2DModel] | None = None) -> None:
        self.pipeline = ClassConditionalPipeline(unet, scheduler_config, discriminator)
        self.profile_pipelines = {name: ClassConditionalPipeline(other, scheduler_config, discriminator)
                                  for name, other in (profile_unets or {}).items() if name != MAIN_MODEL}
        self.profiles = profiles or SamplingProfiles()
        if discriminator is None and any(self.profiles.get(name).discriminator_guidance for name in PROFILES):
            raise ValueError("A sampling profile asks for discriminator guidance but the generator has no "
                             f"discriminator/ folder; train one with {REBUILD}, or set discriminator_guidance to 0.")
        for name in PROFILES:  # every network a profile names is there
            for model in self.profiles.get(name).models():
                self.pipeline_for(replace(self.profiles.get(name), model=model, class_models={}))
        self.batch_size = batch_size
        # Images depend on the precision, so a seed repeats an image only at the same one; None: native bf16 only.
        self.bf16 = has_fast_bf16() if bf16 is None else bf16

    def pipeline_for(self, settings: SamplingDefaults) -> ClassConditionalPipeline:
        """The pipeline of the network these settings sample with (`model`; `generate` resolves `class_models`)."""
        if settings.model in ("", MAIN_MODEL):
            return self.pipeline
        if settings.model not in self.profile_pipelines:
            raise ValueError(f"A sampling profile names the network {settings.model!r}, which this generator lacks; "
                             f"add it with {ATTACH}, or clear the profile's model.")
        return self.profile_pipelines[settings.model]

    def unet_for(self, profile: str) -> UNet2DModel:
        """The UNet that `profile` samples with."""
        return self.pipeline_for(self.profiles.get(profile)).unet

    def sample_batch(self, class_index: int, count: int, settings: SamplingDefaults,
                     generator: torch.Generator) -> np.ndarray:
        labels = torch.full((count,), class_index, dtype=torch.long)
        return to_uint8(self.pipeline_for(settings)(
            labels, settings.steps, settings.guidance, generator, bf16=self.bf16,
            guidance_interval=settings.guidance_interval, solver=settings.solver,
            noise_spacing=settings.noise_spacing, discriminator_guidance=settings.discriminator_guidance))

    def sample_guided_batch(self, class_index: int, starts: np.ndarray, strength: float, settings: SamplingDefaults,
                            generator: torch.Generator) -> np.ndarray:
        labels = torch.full((len(starts),), class_index, dtype=torch.long)
        return to_uint8(self.pipeline_for(settings)(
            labels, settings.steps, settings.guidance, generator, bf16=self.bf16,
            guidance_interval=settings.guidance_interval, solver=settings.solver,
            noise_spacing=settings.noise_spacing, start=to_model_range(starts), strength=strength,
            discriminator_guidance=settings.discriminator_guidance))

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """unet/ and each profile's own network (fp16 safetensors + config), scheduler/, generator_config.json,
        and discriminator/ if it has one."""
        folder = Path(path)
        for name, pipeline in {MAIN_MODEL: self.pipeline, **self.profile_pipelines}.items():
            portable_copy(pipeline.unet).to(torch.float16).save_pretrained(folder / name, safe_serialization=True)
        if self.pipeline.discriminator is not None:
            self.pipeline.discriminator.save_pretrained(folder / DISCRIMINATOR_FOLDER)
        DDPMScheduler.from_config(self.pipeline.scheduler_config).save_pretrained(folder / "scheduler")
        write_generator_config(folder, BACKEND, self.profiles)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> PixelDiffusionGenerator:
        folder = Path(path)
        try:
            profiles = SamplingProfiles.from_config(read_generator_config(folder))
            unet = UNet2DModel.from_pretrained(folder / MAIN_MODEL, torch_dtype=torch.float32)
            own = set().union(*(profiles.get(name).models() for name in PROFILES)) - {"", MAIN_MODEL}
            profile_unets = {name: UNet2DModel.from_pretrained(folder / name, torch_dtype=torch.float32)
                             for name in sorted(own)}
            scheduler_config = dict(DDPMScheduler.load_config(folder / "scheduler"))
        except Exception as error:
            raise ValueError(
                f"Generator in {folder} is corrupt or incomplete ({error}). Rebuild it with "
                "`python -m training.train_generator` or restore assets/generator/."
            ) from error
        discriminator_dir = folder / DISCRIMINATOR_FOLDER
        discriminator = NoisyTileDiscriminator.from_pretrained(discriminator_dir) if discriminator_dir.is_dir() else None
        return cls(unet, scheduler_config, profiles, discriminator=discriminator, profile_unets=profile_unets)
