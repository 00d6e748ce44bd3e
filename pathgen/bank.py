"""The bank of validated synthetic images that the app browses and quizzes from.

On disk: `bank.npz` (images uint8 [N, 28, 28, 3], labels int64 [N], probabilities float32 [N, 9],
seeds int64 [N], attempts int64 [N]) and `bank.json` (how it was made: model versions, threshold).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import IMAGE_SHAPE, NUM_CLASSES

BANK_ARRAYS = "bank.npz"
BANK_INFO = "bank.json"


@dataclass
class ImageBank:
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    seeds: np.ndarray
    attempts: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[1:] != IMAGE_SHAPE or self.images.dtype != np.uint8:
            raise ValueError(f"bank images must be uint8 [N, 28, 28, 3], got {self.images.dtype} {self.images.shape}.")
        if self.probabilities.shape != (n, NUM_CLASSES):
            raise ValueError(f"bank probabilities must be [{n}, {NUM_CLASSES}], got {self.probabilities.shape}.")
        for name in ("labels", "seeds", "attempts"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"bank {name} must have shape [{n}], got {getattr(self, name).shape}.")
        if n and (self.labels.min() < 0 or self.labels.max() >= NUM_CLASSES):
            raise ValueError("bank labels must lie in 0..8.")

    def __len__(self) -> int:
        return len(self.images)

    def indices_of(self, class_index: int) -> np.ndarray:
        return np.flatnonzero(self.labels == class_index)

    def confidence(self) -> np.ndarray:
        """The probability each image's classifier gave its own (requested) class."""
        return self.probabilities[np.arange(len(self)), self.labels]

    def save(self, path: str | os.PathLike) -> None:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / BANK_ARRAYS, images=self.images, labels=self.labels,
                            probabilities=self.probabilities.astype(np.float32), seeds=self.seeds,
                            attempts=self.attempts)
        (folder / BANK_INFO).write_text(json.dumps(self.info, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ImageBank:
        folder = Path(path)
        arrays_file, info_file = folder / BANK_ARRAYS, folder / BANK_INFO
        if not arrays_file.is_file():
            raise FileNotFoundError(f"Image bank {arrays_file} is missing. Rebuild it with `python -m training.build_bank`.")
        try:
            with np.load(arrays_file) as arrays:
                bank = cls(images=arrays["images"], labels=arrays["labels"].astype(np.int64),
                           probabilities=arrays["probabilities"].astype(np.float32),
                           seeds=arrays["seeds"].astype(np.int64), attempts=arrays["attempts"].astype(np.int64),
                           info=json.loads(info_file.read_text()) if info_file.is_file() else {})
        except Exception as error:
            raise ValueError(f"Image bank in {folder} is corrupt ({error}). Rebuild it with "
                             "`python -m training.build_bank`.") from error
        return bank
