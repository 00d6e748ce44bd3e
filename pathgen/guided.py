"""Few-shot guided generation (SDEdit, Meng et al. 2022): what both backends share.

Each new tile starts from one of k real examples, noised to the level `strength` (a fraction of the sampling
schedule, counted in evenly spaced steps whatever the profile's spacing: 1 starts from pure noise and so ignores
the examples) and then denoised with the class conditioning.
The stain, colour and texture scale survive the partial noising; the layout is redrawn. A backend implements
`sample_guided_batch(class_index, starts, strength, settings, generator)`; `BatchedGenerator.generate_guided`
checks the arguments here and does the seeding and batching.
"""

from __future__ import annotations

import numpy as np
import torch

from .checks import is_number_in
from .data import IMAGE_SHAPE

MAX_EXAMPLES = 4096
# A low acceptance threshold must not turn every doubtful real tile into a refused one.
SURE_OTHER_CLASS = 0.9


def check_strength(strength: float) -> float:
    if not is_number_in(strength, 0.0, 1.0, include_low=False):
        raise ValueError(f"strength must be a number above 0 and at most 1, got {str(strength)[:40]!r}.")
    return float(strength)


def check_examples(examples: np.ndarray) -> np.ndarray:
    """uint8 [k, 28, 28, 3] with 1 <= k <= MAX_EXAMPLES; a clear ValueError for anything else."""
    if not isinstance(examples, np.ndarray):
        raise ValueError(f"examples must be a numpy array of uint8 [k, 28, 28, 3], got {type(examples).__name__}.")
    if examples.dtype != np.uint8:
        raise ValueError(f"examples must be uint8 (0..255), got dtype {examples.dtype}; convert with "
                         "(images * 255).round().astype('uint8') if yours are floats in 0..1.")
    if examples.ndim != 4 or examples.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"examples must have shape [k, 28, 28, 3], got {list(examples.shape)}.")
    if not 1 <= len(examples) <= MAX_EXAMPLES:
        raise ValueError(f"examples must hold from 1 to {MAX_EXAMPLES} tiles, got {len(examples)}.")
    return examples


def starting_tiles(examples: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
    """The n starts: every example once per cycle (so k <= n uses all k), in an order drawn from `generator`."""
    cycles = -(-n // len(examples))
    order = torch.cat([torch.randperm(len(examples), generator=generator) for _ in range(cycles)])[:n]
    return examples[order.numpy()]


def to_model_range(tiles: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> floats in [-1, 1], [N, 3, H, W]."""
    return torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2).float() / 127.5 - 1


def start_index(steps: int, strength: float) -> int:
    """Index of the first of `steps` timesteps that a start at `strength` runs (diffusers' img2img rule; >= 1 step)."""
    return steps - min(steps, max(1, int(steps * strength)))


def first_at_or_below(timesteps: torch.Tensor, level: int) -> int:
    """Index of the first timestep no noisier than `level`; the last one if none is, so at least one step runs."""
    below = torch.nonzero(timesteps <= level).flatten()
    return int(below[0]) if len(below) else len(timesteps) - 1


def wrong_class_examples(probabilities: np.ndarray, class_index: int, threshold: float) -> np.ndarray:
    """Positions of examples the classifier is sure belong to another class: it would accept them as that class
    at `threshold`, and at no less than SURE_OTHER_CLASS whatever the threshold."""
    top = probabilities.argmax(axis=1)
    return np.flatnonzero((top != class_index) & (probabilities.max(axis=1) >= max(threshold, SURE_OTHER_CLASS)))
