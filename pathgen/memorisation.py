"""Near-copies of training tiles: the rule `evaluate_generator` reports and the guard `build_bank` applies.

A generated tile is a near-copy when it lies closer (pixel L2) to some train tile than `percentile` per cent
of the held-out real val tiles of its class do. Real held-out tiles come from other patches of the same
slides, so they set what "close" means for each tissue without any hand-picked distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import load_split
from .metrics import near_copy_thresholds, nearest_distances

DEFAULT_PERCENTILE = 1.0


@dataclass
class NearCopyReference:
    """The train tiles and each class's distance below which a generated tile counts as a near-copy."""

    train_images: np.ndarray  # uint8 [N, 28, 28, 3]
    thresholds: np.ndarray  # float [NUM_CLASSES]
    percentile: float = DEFAULT_PERCENTILE

    @classmethod
    def from_splits(cls, train_images: np.ndarray, val_images: np.ndarray, val_labels: np.ndarray,
                    percentile: float = DEFAULT_PERCENTILE) -> NearCopyReference:
        if not 0.0 < percentile < 100.0:
            raise ValueError(f"percentile must lie strictly between 0 and 100, got {percentile!r}.")
        real_distances, _ = nearest_distances(val_images, train_images)
        return cls(train_images, near_copy_thresholds(real_distances, val_labels, percentile), percentile)

    @classmethod
    def load(cls, data_dir: str | None, percentile: float = DEFAULT_PERCENTILE, download: bool = False,
             ) -> NearCopyReference:
        """From PathMNIST's train and val splits (`load_split` explains where they are looked for)."""
        train_images, _ = load_split("train", data_dir, download)
        val_images, val_labels = load_split("val", data_dir, download)
        return cls.from_splits(train_images, val_images, val_labels, percentile)

    def near_copies(self, images: np.ndarray, labels: np.ndarray | int) -> np.ndarray:
        """Boolean [len(images)]: which images are near-copies; `labels` per image, or one class for all."""
        return nearest_distances(images, self.train_images)[0] < self.thresholds[labels]

    def summary(self) -> dict:
        return {"percentile": self.percentile,
                "rule": f"pixel L2 to the nearest train tile below percentile {self.percentile} of the real val "
                        "tiles of the same class",
                "train_tiles": len(self.train_images), "thresholds": [float(t) for t in self.thresholds]}
