"""The paper's second backend: Stable Diffusion with a LoRA adapter fine-tuned on PathMNIST.

A trained folder holds the adapter (`pytorch_lora_weights.safetensors`, diffusers format) and a
generator_config.json naming the base checkpoint; the base model itself is loaded from wherever
that id or path points. Images are sampled at the training resolution and shrunk to 28x28 so
both backends serve the same `generate(class, n)` interface.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
from huggingface_hub import snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from PIL import Image

from .data import IMAGE_SHAPE, TissueClass, resolve_class
from .generation import (
    GENERATOR_CONFIG_NAME,
    HUB_BACKEND,
    BatchedGenerator,
    SamplingDefaults,
    SamplingProfiles,
    looks_like_hub_id,
    read_generator_config,
    write_generator_config,
)

BACKEND = HUB_BACKEND
LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
LORA_SAMPLING_PROFILES = SamplingProfiles(live=SamplingDefaults(steps=20, guidance=7.5),
                                          bank=SamplingDefaults(steps=30, guidance=7.5))
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


def write_lora_config(folder: str | os.PathLike, base_model: str, resolution: int,
                      profiles: SamplingProfiles = LORA_SAMPLING_PROFILES) -> None:
    """The file `load_generator` dispatches on; `base_model` is a hub id or a path."""
    write_generator_config(folder, BACKEND, profiles, base_model=str(base_model), resolution=int(resolution))


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


class LoraGenerator(BatchedGenerator):
    """Stable Diffusion + LoRA: `generate(class, n, profile=...)` -> uint8 [n, 28, 28, 3]."""

    def __init__(self, pipe: StableDiffusionPipeline, resolution: int,
                 profiles: SamplingProfiles = LORA_SAMPLING_PROFILES, batch_size: int = 8) -> None:
        for name in ("live", "bank"):
            if not profiles.get(name).guides_everywhere:
                raise ValueError(f"The Stable Diffusion + LoRA backend guides every step; set the {name} profile's "
                                 "guidance_interval to [0.0, 1.0].")
            if profiles.get(name).discriminator_guidance:
                raise ValueError(f"Discriminator guidance exists for the pixel-diffusion backend only; set the {name} "
                                 "profile's discriminator_guidance to 0.")
            if profiles.get(name).model or profiles.get(name).class_models:
                raise ValueError(f"The Stable Diffusion + LoRA backend samples every profile with its one adapter; "
                                 f"clear the {name} profile's model and class_models.")
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self.resolution = resolution
        self.profiles = profiles
        self.batch_size = batch_size
        self.use_scheduler(profiles.live)

    def use_scheduler(self, settings: SamplingDefaults) -> None:
        # DPM-Solver++ gives good samples in 20-30 steps whatever scheduler the base model ships
        # (SD 1.5 ships PNDM); it keeps the base model's betas and prediction type.
        config = self.pipe.scheduler.config
        karras = settings.noise_spacing == "karras"
        if (not isinstance(self.pipe.scheduler, DPMSolverMultistepScheduler) or config.algorithm_type != settings.solver
                or config.use_karras_sigmas != karras):
            self.pipe.scheduler = DPMSolverMultistepScheduler.from_config(
                config, algorithm_type=settings.solver, use_karras_sigmas=karras)

    def sample_batch(self, class_index: int, count: int, settings: SamplingDefaults,
                     generator: torch.Generator) -> np.ndarray:
        self.use_scheduler(settings)
        output = self.pipe([class_prompt(class_index)] * count, height=self.resolution, width=self.resolution,
                           num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                           generator=generator, output_type="np")
        return shrink(checked_images(output, count))

    def sample_guided_batch(self, class_index: int, starts: np.ndarray, strength: float, settings: SamplingDefaults,
                            generator: torch.Generator) -> np.ndarray:
        self.use_scheduler(settings)
        # Same modules (UNet with its adapter, VAE, text encoder, scheduler), so nothing is copied or reloaded.
        img2img = StableDiffusionImg2ImgPipeline(**self.pipe.components)
        img2img.set_progress_bar_config(disable=True)
        size = (self.resolution, self.resolution)
        images = [Image.fromarray(tile).resize(size, Image.Resampling.BICUBIC) for tile in starts]
        output = img2img([class_prompt(class_index)] * len(starts), image=images, strength=strength,
                         num_inference_steps=settings.steps, guidance_scale=settings.guidance,
                         generator=generator, output_type="np")
        return shrink(checked_images(output, len(starts)))

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
        try:
            settings = read_generator_config(folder)
            if settings["backend"] != BACKEND:
                raise ValueError(f"backend is {settings['backend']!r}, not {BACKEND!r}")
            base_model = base_model or settings["base_model"]
            resolution = int(settings["resolution"])
            profiles = SamplingProfiles.from_config(settings)
        except FileNotFoundError:
            raise
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
        return cls(pipe.to(device), resolution, profiles)


def checked_images(output, count: int) -> np.ndarray:
    """The pipeline's images, with a warning when the safety checker blanked some."""
    if any(output.nsfw_content_detected or []):
        # Pink H&E tissue can trip SD's NSFW filter, which returns black tiles without raising.
        warnings.warn(f"The base model's safety checker blanked {sum(output.nsfw_content_detected)} of "
                      f"{count} images; they are black.", stacklevel=3)
    return output.images


def shrink(images: np.ndarray) -> np.ndarray:
    """Pipeline output, floats in [0, 1] [N, H, W, 3] -> uint8 [N, 28, 28, 3] (PIL bicubic antialiases)."""
    pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    size = IMAGE_SHAPE[:2]
    return np.stack([np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC)) for image in pixels])
