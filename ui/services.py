"""Everything the tabs share, loaded once at start-up: models, the image bank, real tiles, metrics, storage."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathgen.bank import ImageBank
from pathgen.classifier import TissueClassifier
from pathgen.data import DATA_CITATION, NUM_CLASSES, TISSUE_CLASSES, check_images
from pathgen.generation import GENERATOR_CONFIG_NAME, ImageGenerator, load_generator

ASSETS_ENV = "PATHGEN_ASSETS_DIR"
DEFAULT_ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Which script rebuilds each asset, named in the start-up error when one is missing or corrupt.
REBUILD = {
    "classifier": "python -m training.train_classifier",
    "classifier/metrics.json": "python -m training.evaluate_classifier",
    "generator": "python -m training.train_generator",
    "metrics/generator.json": "python -m training.evaluate_generator",
    "bank": "python -m training.build_bank",
    "real_examples.npz": "python -m training.export_real_examples",
    "metrics/realism.json": "python -m training.realism_report",
}
REALISM = "metrics/realism.json"  # optional: written once people have judged tiles in the real-or-synthetic round


class AssetError(RuntimeError):
    """An asset is missing or unreadable; the message names the script that rebuilds it."""


@dataclass
class Services:
    """Shared read-only by all sessions, except `storage` (its own locking) and the UI handles set by the app."""

    classifier: TissueClassifier
    generator: ImageGenerator
    generator_backend: str
    bank: ImageBank
    real_images: np.ndarray  # uint8 [M, 28, 28, 3], real PathMNIST val tiles
    real_labels: np.ndarray  # int64 [M]
    real_probabilities: np.ndarray  # float32 [M, 9], the classifier's view of each real tile
    real_indices: np.ndarray  # int64 [M], their positions in the PathMNIST val split (stable tile keys)
    attribution: str
    generator_metrics: dict
    classifier_metrics: dict
    assets_dir: Path
    realism_metrics: dict = field(default_factory=dict)  # metrics/realism.json, once people have judged tiles
    storage: Any = None  # pathgen.storage.Storage, or None when no store is configured
    # The browser's answer history (a gr.BrowserState) that the app creates before the tabs, so that the
    # tabs that record answers and the one that shows progress use the same component.
    history: Any = None
    extras: dict = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return float(self.bank.info.get("threshold", 0.9))

    def tile_key(self, source: str, index: int) -> str:
        """A stable, anonymous name for one tile, with its class: "real:<class>:val<PathMNIST val index>" or
        "bank:<class>:<bank seed>" (the seed regenerates the tile)."""
        if source == "real":
            return f"real:{TISSUE_CLASSES[self.real_labels[index]].key}:val{int(self.real_indices[index])}"
        return f"bank:{TISSUE_CLASSES[self.bank.labels[index]].key}:{int(self.bank.seeds[index])}"

    def real_of(self, class_index: int) -> np.ndarray:
        """Positions (into real_images) of the real tiles of one class."""
        return np.flatnonzero(self.real_labels == class_index)


def _read_json(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def _read_real(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    with np.load(path) as arrays:
        images, labels = check_images(arrays["images"]), arrays["labels"].astype(np.int64).reshape(-1)
        indices = arrays["indices"].astype(np.int64) if "indices" in arrays else np.arange(len(labels))
        attribution = str(arrays["attribution"]) if "attribution" in arrays else DATA_CITATION
    if len(labels) != len(images) or len(indices) != len(images) or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError("labels do not match the images")
    return images, labels, indices, attribution


def stored_real_probabilities(path: Path, classifier_dir: Path, count: int) -> np.ndarray | None:
    """The classifier's probabilities stored with the real tiles, if they came from these very weights."""
    with np.load(path) as arrays:
        if "probabilities" not in arrays or "classifier_sha256" not in arrays:
            return None
        probabilities, made_by = arrays["probabilities"].astype(np.float32), str(arrays["classifier_sha256"])
    if probabilities.shape != (count, NUM_CLASSES) or made_by != TissueClassifier.weights_sha256(classifier_dir):
        return None
    return probabilities


def load_services(folder: str | os.PathLike, storage: Any = None) -> Services:
    """Loads every asset or raises AssetError saying which one failed and how to rebuild it."""
    folder = Path(folder)

    def load(name: str, loader):
        try:
            return loader(folder / name)
        except Exception as error:
            hint = "" if REBUILD[name] in str(error) else f" Rebuild it with `{REBUILD[name]}`."
            raise AssetError(f"{folder / name}: {error}{hint}") from error

    classifier = load("classifier", TissueClassifier.from_pretrained)
    generator = load("generator", load_generator)
    backend = load("generator", lambda p: _read_json(p / GENERATOR_CONFIG_NAME).get("backend", "unknown"))
    bank = load("bank", ImageBank.load)
    real_images, real_labels, real_indices, attribution = load("real_examples.npz", _read_real)
    real_probabilities = load("real_examples.npz", lambda p: stored_real_probabilities(
        p, folder / "classifier", len(real_images)))
    if real_probabilities is None:  # another classifier, or an export without them: a slower start
        real_probabilities = classifier.predict_proba(real_images)
    return Services(classifier=classifier, generator=generator, generator_backend=backend, bank=bank,
                    real_images=real_images, real_labels=real_labels,
                    real_probabilities=real_probabilities, real_indices=real_indices,
                    attribution=attribution, generator_metrics=load("metrics/generator.json", _read_json),
                    classifier_metrics=load("classifier/metrics.json", _read_json), assets_dir=folder,
                    realism_metrics=load(REALISM, _read_json) if (folder / REALISM).is_file() else {}, storage=storage)


def open_storage(url: str | None = None) -> Any:
    """The anonymous-counts store (`pathgen.storage`), or None while that module is not installed."""
    try:
        from pathgen.storage import Storage
    except ImportError:
        return None
    return Storage.from_url(url)
