"""The paper's second backend: Stable Diffusion with a LoRA adapter fine-tuned on PathMNIST.

A trained folder holds the adapter (`pytorch_lora_weights.safetensors`, diffusers format) and a
generator_config.json naming the base checkpoint; the base model itself is loaded from wherever
that id or path points. Images are sampled at the training resolution and shrunk to 28x28 so
both backends serve the same `generate(class, n)` interface.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
from huggingface_hub import snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from PIL import Image

from .data import IMAGE_SHAPE, TissueClass, resolve_class
from .generator import GENERATOR_CONFIG_NAME, SamplingDefaults, check_generation_args, looks_like_hub_id

BACKEND = "sd-lora"
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
LORA_SAMPLING_DEFAULTS = SamplingDefaults(steps=30, guidance=7.5)
PROMPT_PREFIX = "an H&E stained histopathology image of"


def class_prompt(class_ref: int | str | TissueClass) -> str:
    """The one text prompt a class is trained and sampled with."""
    tissue = class_ref if isinstance(class_ref, TissueClass) else resolve_class(class_ref)
    subject = tissue.name.lower()
    if tissue.key == "background":
        subject = "empty glass slide background"  # "colorectal background" would mean nothing to CLIP
    elif not subject.startswith(("colorectal", "normal colon")):
        subject = f"colorectal {subject}"
    return f"{PROMPT_PREFIX} {subject}"


def write_generator_config(folder: str | os.PathLike, base_model: str, resolution: int,
                           defaults: SamplingDefaults = LORA_SAMPLING_DEFAULTS) -> None:
    """The file `load_generator` dispatches on; `base_model` is a hub id or a path."""
    config = {"backend": BACKEND, "base_model": str(base_model), "resolution": int(resolution),
              "sampling_defaults": {"steps": defaults.steps, "guidance": defaults.guidance}}
    (Path(folder) / GENERATOR_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def download_adapter(repo_id: str) -> Path:
    """Fetches a trained adapter folder from the Hugging Face Hub."""
    try:
        return Path(snapshot_download(repo_id))
    except RepositoryNotFoundError as error:
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local folder nor a Hugging Face Hub repository. Pass the folder that "
            "`python -m training.train_lora` wrote (its --output-dir).") from error
    except Exception as error:  # offline mode, DNS failure, timeouts: huggingface_hub raises many types
        raise ConnectionError(
            f"{repo_id!r} is not a local folder, and the Hugging Face Hub is unreachable so it cannot be "
            f"downloaded ({type(error).__name__}: {error}). Pass a local folder written by "
            "`python -m training.train_lora` instead.") from error


class LoraGenerator:
    """Stable Diffusion + LoRA: `generate(class, n)` -> uint8 [n, 28, 28, 3]."""

    def __init__(self, pipe: StableDiffusionPipeline, resolution: int,
                 defaults: SamplingDefaults = LORA_SAMPLING_DEFAULTS, batch_size: int = 8) -> None:
        # DPM-Solver++ gives good samples in 20-30 steps whatever scheduler the base model ships
        # (SD 1.5 ships PNDM); it keeps the base model's betas and prediction type.
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type=defaults.solver)
        pipe.set_progress_bar_config(disable=True)
        if not defaults.guides_everywhere:
            raise ValueError("The Stable Diffusion + LoRA backend guides every step; set its sampling_defaults' "
                             "guidance_interval to [0.0, 1.0].")
        self.pipe = pipe
        self.resolution = resolution
        self.defaults = defaults
        self.batch_size = batch_size

    def generate(self, class_index: int, n: int, *, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None) -> np.ndarray:
        steps = self.defaults.steps if steps is None else steps
        guidance = self.defaults.guidance if guidance is None else guidance
        class_index = check_generation_args(class_index, n, seed, steps, guidance)
        if self.pipe.scheduler.config.algorithm_type != self.defaults.solver:  # defaults may change after loading
            self.pipe.scheduler = DPMSolverMultistepScheduler.from_config(self.pipe.scheduler.config,
                                                                          algorithm_type=self.defaults.solver)
        prompt = class_prompt(class_index)
        # A CPU generator draws the same starting noise for a seed on CPU and GPU.
        generator = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
        batches = []
        for start in range(0, n, self.batch_size):
            count = min(self.batch_size, n - start)
            output = self.pipe([prompt] * count, height=self.resolution, width=self.resolution,
                               num_inference_steps=int(steps), guidance_scale=float(guidance),
                               generator=generator, output_type="np")
            if any(output.nsfw_content_detected or []):
                # Pink H&E tissue can trip SD's NSFW filter, which returns black tiles without raising.
                warnings.warn(f"The base model's safety checker blanked {sum(output.nsfw_content_detected)} of "
                              f"{count} images; they are black.", stacklevel=2)
            batches.append(shrink(output.images))
        return np.concatenate(batches)

    @classmethod
    def from_pretrained(cls, path_or_hub_id: str | os.PathLike, base_model: str | None = None, device: str = "cpu",
                        torch_dtype: torch.dtype | None = None) -> LoraGenerator:
        """Loads a folder written by training/train_lora.py, or downloads one from the hub ("owner/name").

        `base_model` overrides the checkpoint named in generator_config.json, e.g. a local copy when offline.
        """
        folder = Path(path_or_hub_id).expanduser()
        if not folder.is_dir():
            if not looks_like_hub_id(path_or_hub_id):
                raise FileNotFoundError(
                    f"LoRA generator folder {folder} not found. Train one with `python -m training.train_lora` "
                    "or pass the folder it wrote.")
            folder = download_adapter(str(path_or_hub_id))
        config_file = folder / GENERATOR_CONFIG_NAME
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file} is missing: {folder} is not a PathGen generator folder.")
        try:
            settings = json.loads(config_file.read_text())
            if settings["backend"] != BACKEND:
                raise ValueError(f"backend is {settings['backend']!r}, not {BACKEND!r}")
            base_model = base_model or settings["base_model"]
            resolution = int(settings["resolution"])
            defaults = SamplingDefaults(**settings["sampling_defaults"])
        except Exception as error:
            raise ValueError(
                f"{config_file} is corrupt ({error}). Rewrite it by rerunning `python -m training.train_lora` "
                "with the same --output-dir.") from error

        try:
            pipe = StableDiffusionPipeline.from_pretrained(base_model, dtype=torch_dtype)
        except Exception as error:
            raise OSError(
                f"Could not load the base model {base_model!r} ({error}). It must be a diffusers Stable Diffusion "
                "folder or a reachable hub id; offline, pass base_model= a local copy.") from error
        try:
            pipe.load_lora_weights(folder, weight_name=LORA_WEIGHT_NAME)
            # diffusers only warns when no key matches the UNet; an adapter-less pipeline would pass silently.
            if not getattr(pipe.unet, "peft_config", None):
                raise ValueError(f"no LoRA weights in it match the UNet of {base_model!r}")
        except Exception as error:
            raise ValueError(
                f"LoRA weights in {folder} are corrupt, missing or made for another base model ({error}). Retrain "
                "with `python -m training.train_lora`, or pass the base_model= it was trained on.") from error
        return cls(pipe.to(device), resolution, defaults)


def shrink(images: np.ndarray) -> np.ndarray:
    """Pipeline output, floats in [0, 1] [N, H, W, 3] -> uint8 [N, 28, 28, 3] (PIL bicubic antialiases)."""
    pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    size = IMAGE_SHAPE[:2]
    return np.stack([np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)) for image in pixels])
