"""What every generator backend shares: sampling profiles, generator_config.json, argument checks,
seeded batching, and the one `load_generator` entry point.

A generator folder's generator_config.json names its backend and two sampling profiles: `live` (fast,
for on-demand generation in the app) and `bank` (quality first, for offline work such as the bank).
Backends are found through `BACKENDS` when a folder is loaded, so this module imports none of them.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .checks import is_number_in, is_whole_in
from .data import TISSUE_CLASSES, resolve_class
from .flat_fields import MAX_COLOURS as MAX_FLAT_COLOURS
from .flat_fields import MAX_TOLERANCE as MAX_FLAT_TOLERANCE
from .flat_fields import MAX_WINDOW as MAX_FLAT_WINDOW
from .flat_fields import apply_flat_field, is_flat_field, normalised_flat_field
from .guided import check_examples, check_strength, starting_tiles

MAX_IMAGES_PER_CALL = 1024
MAX_STEPS = 1000
MAX_GUIDANCE = 20.0
MAX_DISCRIMINATOR_GUIDANCE = 10.0
GENERATOR_CONFIG_NAME = "generator_config.json"
PROFILES = ("live", "bank")
EVERY_STEP = (0.0, 1.0)  # the guidance interval that guides every sampling step
# DPM-Solver++ (deterministic ODE) or its SDE form, which adds fresh noise at every step.
SOLVERS = ("dpmsolver++", "sde-dpmsolver++")
# "trailing": timesteps evenly spaced, the first at pure noise; "karras": noise levels spaced as in Karras et
# al. (2022), dense near the clean end, so the last steps are small and keep pixel-scale texture.
NOISE_SPACINGS = ("trailing", "karras")
# backend name in generator_config.json -> "module:class" with a `from_pretrained(folder, **kwargs)`.
BACKENDS = {"pixel-diffusion": "pathgen.generator:PixelDiffusionGenerator",
            "sd-lora": "pathgen.lora:LoraGenerator"}
HUB_BACKEND = "sd-lora"  # the backend whose trained folders are published on the Hugging Face Hub
# A profile's own network lives in a plain subfolder of the generator folder: no separators, no "." or "..".
MODEL_FOLDER_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_MIXED_MODELS = 4  # networks one class may draw from in equal shares


@dataclass
class SamplingDefaults:
    """One sampling profile's settings."""

    steps: int = 12
    guidance: float = 3.0
    # Classifier-free guidance is applied only at timesteps t with low <= t / T <= high (T = training timesteps,
    # 1 = pure noise). Guiding the noisiest steps pulls samples towards a few typical layouts (Kynkaanniemi et
    # al. 2024, "Applying guidance in a limited interval"), and each unguided step costs half a guided one.
    guidance_interval: tuple[float, float] = EVERY_STEP
    solver: str = SOLVERS[0]
    noise_spacing: str = NOISE_SPACINGS[0]
    # Weight of discriminator guidance (pathgen.discriminator); 0 samples the model alone.
    discriminator_guidance: float = 0.0
    # Guidance for named classes (class key -> scale) in place of `guidance`: guidance trades a class's range of
    # appearance for recognisability, and classes that are recognisable without it lose only variety.
    class_guidance: dict[str, float] = field(default_factory=dict)
    # Subfolder of the generator folder with this profile's own network (e.g. "unet-bank": a bigger UNet for the
    # offline bank, too slow for live use); empty: the folder's main network.
    model: str = ""
    # Networks for named classes (class key -> subfolder) in place of `model`: a network fine-tuned on one class
    # can fit it more closely than one shared by all nine. A list of 2 to MAX_MIXED_MODELS subfolders draws the
    # class from each in equal shares, so networks that miss opposite parts of a class's range can cover it together.
    class_models: dict[str, str | list[str]] = field(default_factory=dict)
    # Flat-field colours for named classes (class key -> {"colours": [[r, g, b], ...], "tolerance": levels, optional
    # "distance_map"}): the exact values a scan renders blank glass as, which a continuous model never draws
    # (pathgen.flat_fields).
    flat_fields: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_whole_in(self.steps, 1, MAX_STEPS):
            raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {self.steps!r}.")
        if not is_number_in(self.guidance, 0.0, MAX_GUIDANCE):
            raise ValueError(f"guidance must be a number from 0 to {MAX_GUIDANCE}, got {self.guidance!r}.")
        try:
            low, high = (float(bound) for bound in self.guidance_interval)
        except (TypeError, ValueError):
            low, high = 1.0, 0.0  # fails the range check below with the same message
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"guidance_interval must be two numbers 0 <= low <= high <= 1, got {self.guidance_interval!r}.")
        self.steps, self.guidance, self.guidance_interval = int(self.steps), float(self.guidance), (low, high)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}.")
        if self.noise_spacing not in NOISE_SPACINGS:
            raise ValueError(f"noise_spacing must be one of {', '.join(NOISE_SPACINGS)}, got {self.noise_spacing!r}.")
        weight = self.discriminator_guidance
        if not is_number_in(weight, 0.0, MAX_DISCRIMINATOR_GUIDANCE):
            raise ValueError(f"discriminator_guidance must be a number from 0 to {MAX_DISCRIMINATOR_GUIDANCE}, "
                             f"got {weight!r}.")
        self.discriminator_guidance = float(weight)
        self.class_guidance = checked_class_guidance(self.class_guidance)
        if self.model != "" and not is_model_folder(self.model):
            raise ValueError("model must be empty or the name of a subfolder of the generator folder (letters, digits, "
                             f"'_', '-', '.'; at most 64), got {str(self.model)[:60]!r}.")
        self.class_models = checked_class_models(self.class_models)
        self.flat_fields = {key: normalised_flat_field(spec) for key, spec in checked_per_class(
            self.flat_fields, "flat_fields", is_flat_field,
            f'{{"colours": 1 to {MAX_FLAT_COLOURS} [r, g, b] triples of whole numbers 0-255, '
            f'"tolerance": a whole number 0-{MAX_FLAT_TOLERANCE}, optionally one of "distance_map": tolerance + 1 '
            f'non-decreasing numbers from 0 to the tolerance, "blend": {{"start": a number from 0 to below the '
            f'tolerance, "window": an odd whole number 1-{MAX_FLAT_WINDOW}}}, or "shift": {{"min_share": a number '
            f'above 0 up to 1, "offset_map": tolerance + 1 non-decreasing numbers from 0 to the tolerance}}}}').items()}

    def guidance_for(self, class_index: int) -> float:
        """The guidance scale this profile samples class `class_index` with."""
        return self.class_guidance.get(resolve_class(class_index).key, self.guidance)

    def models_for(self, tissue: int | str) -> list[str]:
        """The networks (subfolder names; empty: the main one) this profile draws a class (index, key or name) from,
        in equal shares."""
        choice = self.class_models.get(resolve_class(tissue).key, self.model)
        return [choice] if isinstance(choice, str) else list(choice)

    def flat_field_for(self, class_index: int) -> dict | None:
        """The flat-field colours and tolerance this profile snaps class `class_index`'s tiles to; None for none."""
        return self.flat_fields.get(resolve_class(class_index).key)

    def models(self) -> set[str]:
        """Every network this profile samples with, named as in `model` ("" for the main one)."""
        return {self.model}.union(*(self.models_for(key) for key in self.class_models))

    def describe_guidance(self) -> str:
        return describe_guidance(self.guidance, self.class_guidance)

    def to_dict(self) -> dict:
        """The settings as generator_config.json stores them; discriminator guidance, per-class scales, networks of
        its own and flat fields only where used, so configs, hashes and cache keys of generators without them stay what they were."""
        settings = asdict(self)
        for optional in ("discriminator_guidance", "class_guidance", "model", "class_models", "flat_fields"):
            if not settings[optional]:
                del settings[optional]
        return settings

    @property
    def guides_everywhere(self) -> bool:
        return self.guidance_interval == EVERY_STEP


def describe_guidance(guidance: float, class_guidance: dict[str, float] | None = None) -> str:
    """'1.5', or '1.5 (mucus 1, stroma 1.25)' when classes have their own scale."""
    named = ", ".join(f"{key} {scale:g}" for key, scale in (class_guidance or {}).items())
    return f"{guidance:g}" + (f" ({named})" if named else "")


def checked_per_class(mapping: object, field_name: str, valid: Callable[[object], bool], expected: str) -> dict:
    """{class key: value} in class order from a dict keyed by class keys, indices or names, each value passing
    `valid`; ValueError naming the field and what was `expected` of its values."""
    if not isinstance(mapping, dict):
        raise ValueError(f"{field_name} must map class keys to {expected}, got {str(mapping)[:60]!r}.")
    values = {}
    for class_ref, value in mapping.items():
        key = resolve_class(class_ref).key
        if not valid(value):
            raise ValueError(f"{field_name}[{key!r}] must be {expected}, got {str(value)[:60]!r}.")
        values[key] = value
    return {tissue.key: values[tissue.key] for tissue in TISSUE_CLASSES if tissue.key in values}


def checked_class_guidance(class_guidance: object) -> dict[str, float]:
    """{class key: scale} in class order, from keys, indices or names; ValueError naming what is wrong."""
    scales = checked_per_class(class_guidance, "class_guidance", lambda scale: is_number_in(scale, 0.0, MAX_GUIDANCE),
                               f"a number from 0 to {MAX_GUIDANCE}")
    return {key: float(scale) for key, scale in scales.items()}


def is_model_folder(name: object) -> bool:
    return isinstance(name, str) and MODEL_FOLDER_PATTERN.fullmatch(name) is not None


def is_model_mixture(names: object) -> bool:
    return (isinstance(names, list | tuple) and 2 <= len(names) <= MAX_MIXED_MODELS
            and all(is_model_folder(name) for name in names) and len(set(names)) == len(names))


def checked_class_models(class_models: object) -> dict[str, str | list[str]]:
    """{class key: subfolder or list of subfolders} in class order, from keys, indices or names; ValueError naming
    what is wrong."""
    checked = checked_per_class(
        class_models, "class_models", lambda names: is_model_folder(names) or is_model_mixture(names),
        "the name of a subfolder of the generator folder (letters, digits, '_', '-', '.'; at most 64), or a list of "
        f"2 to {MAX_MIXED_MODELS} different such names drawn from in equal shares")
    return {key: names if isinstance(names, str) else list(names) for key, names in checked.items()}


def network_of_each_tile(networks: list[str], seed: int, n: int) -> list[str]:
    """Which of `networks` draws each of the `n` tiles of a call with `seed`: equal shares (to one tile), placed by
    the seed, so that the call's seed and size regenerate every tile."""
    if len(networks) == 1:
        return networks * n
    order = np.random.default_rng([seed, n]).permutation(n)
    chosen = [""] * n
    for rank, position in enumerate(order):
        chosen[position] = networks[rank % len(networks)]
    return chosen


@dataclass
class SamplingProfiles:
    """The `live` and `bank` profiles of one generator."""

    live: SamplingDefaults = field(default_factory=SamplingDefaults)
    bank: SamplingDefaults = field(default_factory=SamplingDefaults)

    def get(self, profile: str) -> SamplingDefaults:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {str(profile)[:40]!r}.")
        return getattr(self, profile)

    def to_dict(self) -> dict:
        return {name: self.get(name).to_dict() for name in PROFILES}

    @classmethod
    def from_config(cls, config: dict) -> SamplingProfiles:
        """Reads `sampling_profiles`; a config with only the older single `sampling_defaults` uses it for both."""
        if "sampling_profiles" in config:
            profiles = config["sampling_profiles"]
            unknown = set(profiles) - set(PROFILES)
            if unknown:
                raise ValueError(f"unknown sampling profiles {sorted(unknown)}; expected {', '.join(PROFILES)}")
            return cls(**{name: SamplingDefaults(**profiles[name]) for name in PROFILES})
        single = config.get("sampling_defaults", {})
        return cls(live=SamplingDefaults(**single), bank=SamplingDefaults(**single))


class ImageGenerator(Protocol):
    """What the validation loop, the bank builder and the app need from any backend."""

    profiles: SamplingProfiles

    @property
    def defaults(self) -> SamplingDefaults: ...

    def generate(self, class_index: int, n: int, *, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None, profile: str = "live") -> np.ndarray: ...

    def generate_guided(self, examples: np.ndarray, class_index: int, n: int, *, strength: float,
                        seed: int | None = None, steps: int | None = None, guidance: float | None = None,
                        profile: str = "live") -> np.ndarray: ...


def check_generation_args(class_index: int, n: int, seed: int | None, steps: int, guidance: float) -> int:
    """Validates the user-facing arguments; returns the class index."""
    tissue = resolve_class(class_index)
    if not is_whole_in(n, 1, MAX_IMAGES_PER_CALL):
        raise ValueError(f"n must be a whole number from 1 to {MAX_IMAGES_PER_CALL}, got {n!r}.")
    if seed is not None and not is_whole_in(seed, 0, 2**63 - 1):
        raise ValueError(f"seed must be a whole number from 0 to 2**63-1 or None, got {seed!r}.")
    if not is_whole_in(steps, 1, MAX_STEPS):
        raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}.")
    if not is_number_in(guidance, 0.0, MAX_GUIDANCE):
        raise ValueError(f"guidance must be a number from 0 to {MAX_GUIDANCE}, got {guidance!r}.")
    return tissue.index


class BatchedGenerator:
    """The seeding and batching both backends share; a backend implements `sample_batch`."""

    profiles: SamplingProfiles
    batch_size: int

    @property
    def defaults(self) -> SamplingDefaults:
        """The live profile: what the app uses unless told otherwise."""
        return self.profiles.live

    def sample_batch(self, class_index: int, count: int, settings: SamplingDefaults,
                     generator: torch.Generator) -> np.ndarray:
        raise NotImplementedError

    def prepare_call(self, class_index: int, n: int, seed: int | None, steps: int | None, guidance: float | None,
                     profile: str) -> tuple[int, SamplingDefaults, torch.Generator, list[str]]:
        """Checks one call's arguments; returns the class, the profile's settings with the overrides, the noise, and
        the network that draws each tile."""
        settings = self.profiles.get(profile)
        steps = settings.steps if steps is None else steps
        class_index = resolve_class(class_index).index
        guidance = settings.guidance_for(class_index) if guidance is None else guidance
        class_index = check_generation_args(class_index, n, seed, steps, guidance)
        flat_field = settings.flat_field_for(class_index)
        own_flat_field = {resolve_class(class_index).key: flat_field} if flat_field else {}
        seed = int(seed) if seed is not None else int(torch.seed() % 2**63)
        networks = network_of_each_tile(settings.models_for(class_index), seed, n)
        settings = SamplingDefaults(**{**asdict(settings), "steps": int(steps), "guidance": float(guidance),
                                       "class_guidance": {}, "model": networks[0],
                                       "class_models": {}, "flat_fields": own_flat_field})
        # A CPU generator draws the same noise for a seed on every device.
        return class_index, settings, torch.Generator().manual_seed(seed), networks

    def sample_by_network(self, networks: list[str], settings: SamplingDefaults,
                          sample: Callable[[SamplingDefaults, np.ndarray], np.ndarray]) -> np.ndarray:
        """The tiles of one call, `networks[i]` drawing tile i: in batches of at most `batch_size`, and within each
        batch one `sample(settings of that network, positions)` per network, in order of first appearance."""
        parts = []
        for start in range(0, len(networks), self.batch_size):
            chunk = networks[start:start + self.batch_size]
            for name in dict.fromkeys(chunk):
                positions = start + np.flatnonzero([network == name for network in chunk])
                parts.append((positions, sample(replace(settings, model=name), positions)))
        tiles = np.empty((len(networks), *parts[0][1].shape[1:]), dtype=parts[0][1].dtype)
        for positions, part in parts:
            tiles[positions] = part
        return tiles

    def generate(self, class_index: int, n: int, *, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None, profile: str = "live") -> np.ndarray:
        """uint8 [n, 28, 28, 3] of one class; `steps`/`guidance` override the profile's; a seed fixes the images."""
        class_index, settings, generator, networks = self.prepare_call(class_index, n, seed, steps, guidance, profile)
        tiles = self.sample_by_network(networks, settings, lambda network_settings, positions: self.sample_batch(
            class_index, len(positions), network_settings, generator))
        return with_flat_fields(tiles, settings)

    def sample_guided_batch(self, class_index: int, starts: np.ndarray, strength: float, settings: SamplingDefaults,
                            generator: torch.Generator) -> np.ndarray:
        raise NotImplementedError

    def generate_guided(self, examples: np.ndarray, class_index: int, n: int, *, strength: float,
                        seed: int | None = None, steps: int | None = None, guidance: float | None = None,
                        profile: str = "live") -> np.ndarray:
        """uint8 [n, 28, 28, 3] of one class, each started from one of `examples` (uint8 [k, 28, 28, 3]) noised to
        `strength` (0 < strength <= 1; see pathgen.guided); `steps` counts the whole schedule, of which about
        strength * steps run. The examples are cycled in a seeded order, so k <= n uses every one."""
        examples, strength = check_examples(examples), check_strength(strength)
        class_index, settings, generator, networks = self.prepare_call(class_index, n, seed, steps, guidance, profile)
        starts = starting_tiles(examples, n, generator)
        tiles = self.sample_by_network(networks, settings, lambda network_settings, positions: self.sample_guided_batch(
            class_index, starts[positions], strength, network_settings, generator))
        return with_flat_fields(tiles, settings)


def with_flat_fields(tiles: np.ndarray, settings: SamplingDefaults) -> np.ndarray:
    """`tiles` snapped to the flat-field colours of one call's settings (`prepare_call` keeps only its class's)."""
    if not settings.flat_fields:
        return tiles
    (spec,) = settings.flat_fields.values()
    return apply_flat_field(tiles, spec)


def read_generator_config(folder: str | os.PathLike) -> dict:
    """generator_config.json of a generator folder; FileNotFoundError if absent, ValueError if corrupt."""
    config_file = Path(folder) / GENERATOR_CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} is missing: {folder} is not a PathGen generator folder.")
    try:
        config = json.loads(config_file.read_text())
        if not isinstance(config, dict) or not isinstance(config.get("backend"), str):
            raise ValueError("it names no backend")
        config["sampling_profiles"] = SamplingProfiles.from_config(config).to_dict()
    except Exception as error:
        raise ValueError(f"{config_file} is corrupt ({error}).") from error
    config.pop("sampling_defaults", None)
    return config


def write_generator_config(folder: str | os.PathLike, backend: str, profiles: SamplingProfiles, **extra) -> None:
    """The one writer of generator_config.json: the backend, both profiles (re-checked, and every network they name a
    subfolder of `folder` already), and backend settings."""
    checked = SamplingProfiles.from_config({"sampling_profiles": profiles.to_dict()})
    named = set().union(*(checked.get(name).models() for name in PROFILES)) - {""}
    missing = sorted(name for name in named if not (Path(folder) / name).is_dir())
    if missing:
        raise ValueError(f"The sampling profiles name networks that {folder} lacks ({', '.join(missing)}); add them "
                         "with `python -m training.attach_model` before naming them.")
    config = {"backend": backend, **extra, "sampling_profiles": checked.to_dict()}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / GENERATOR_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")


def write_sampling_defaults(folder: str | os.PathLike, defaults: SamplingDefaults, profile: str = "live") -> None:
    """Replaces one profile's settings in a generator folder's generator_config.json (either backend)."""
    config = read_generator_config(folder)
    profiles = SamplingProfiles.from_config(config)
    profiles.get(profile)  # checks the name
    setattr(profiles, profile, SamplingDefaults(**asdict(defaults)))
    backend = config.pop("backend")
    config.pop("sampling_profiles")
    write_generator_config(folder, backend, profiles, **config)


def looks_like_hub_id(text: str | os.PathLike) -> bool:
    """True for "owner/name" strings that are not an existing or explicitly relative/absolute path."""
    text = str(text)
    return not Path(text).expanduser().exists() and not text.startswith((".", "/", "~")) and text.count("/") == 1


def backend_class(backend: str) -> type:
    if backend not in BACKENDS:
        raise ValueError(f"unknown generator backend {backend!r}; expected one of {', '.join(BACKENDS)}.")
    module_name, class_name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_generator(path_or_hub_id: str | os.PathLike, **kwargs) -> ImageGenerator:
    """Loads either backend from a local folder, or the LoRA backend from a hub id.

    A folder with generator_config.json is read as it says; `kwargs` go to the LoRA backend
    (e.g. `base_model=`, `device=`). Missing folders raise FileNotFoundError, corrupt ones ValueError.
    """
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        backend = read_generator_config(path)["backend"]
        try:
            cls = backend_class(backend)
        except ValueError as error:
            raise ValueError(f"{path / GENERATOR_CONFIG_NAME} names {error}") from error
        return cls.from_pretrained(path, **kwargs) if backend == HUB_BACKEND else cls.from_pretrained(path)
    if not looks_like_hub_id(path_or_hub_id):
        raise FileNotFoundError(
            f"Generator folder {path} not found. Restore assets/generator/ or retrain with "
            "`python -m training.train_generator`.")
    return backend_class(HUB_BACKEND).from_pretrained(str(path_or_hub_id), **kwargs)
