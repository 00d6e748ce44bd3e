"""PathMNIST classes, their teaching descriptions, and loading through the `medmnist` package."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (28, 28, 3)
DATA_DIR_ENV = "PATHGEN_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.medmnist").expanduser()
DATA_FILE_NAME = "pathmnist.npz"


@dataclass(frozen=True)
class TissueClass:
    index: int
    key: str
    name: str
    description: str


TISSUE_CLASSES: tuple[TissueClass, ...] = (
    TissueClass(0, "adipose", "Adipose tissue",
                "Large, empty, polygonal fat cells outlined by thin pink membranes, like a "
                "honeycomb; nuclei are rare and squeezed flat against the cell edge."),
    TissueClass(1, "background", "Background",
                "No tissue: pale white to grey glass, sometimes with faint dust or blur. "
                "Nothing cellular to see, and no structure."),
    TissueClass(2, "debris", "Debris",
                "Necrotic material and cell fragments: smudgy pink-purple mess with scattered "
                "nuclear dust (karyorrhexis) and no intact architecture."),
    TissueClass(3, "lymphocytes", "Lymphocytes",
                "Dense sheets of small, round, uniformly dark-blue nuclei with almost no "
                "cytoplasm between them; the tile looks evenly speckled and very purple."),
    TissueClass(4, "mucus", "Mucus",
                "Pale, wispy, light blue-grey to lilac material with few or no cells; "
                "streaky, watery texture without firm edges."),
    TissueClass(5, "smooth_muscle", "Smooth muscle",
                "Bright pink, fibrillar bundles of spindle cells with long cigar-shaped nuclei "
                "running in parallel, often in sweeping fascicles."),
    TissueClass(6, "normal_mucosa", "Normal colon mucosa",
                "Regular, evenly spaced crypts lined by a single tidy row of small basal nuclei, "
                "with pale goblet-cell vacuoles; orderly, test-tube-like glands."),
    TissueClass(7, "stroma", "Cancer-associated stroma",
                "Loose to dense pink connective tissue around a tumour, with scattered plump "
                "fibroblasts and a disorganised, desmoplastic look; fewer nuclei than muscle."),
    TissueClass(8, "tumour_epithelium", "Colorectal adenocarcinoma epithelium",
                "Crowded, irregular, back-to-back glands lined by enlarged, elongated, stratified "
                "and hyperchromatic nuclei; loss of goblet cells and of the tidy crypt pattern."),
)
NUM_CLASSES = len(TISSUE_CLASSES)
CLASS_NAMES = tuple(c.name for c in TISSUE_CLASSES)

DATA_CITATION = (
    "PathMNIST (MedMNIST v2: Yang et al., Scientific Data 2023), derived from NCT-CRC-HE-100K and "
    "CRC-VAL-HE-7K (Kather et al., PLoS Medicine 2019, zenodo 1214456); licence CC BY 4.0."
)


class DataNotFoundError(FileNotFoundError):
    """PathMNIST is neither on disk nor downloadable."""


def resolve_class(class_ref: int | str) -> TissueClass:
    """Accepts an index (0-8), a key ('adipose') or a display name ('Adipose tissue')."""
    if isinstance(class_ref, (int, np.integer)) and not isinstance(class_ref, bool):
        if 0 <= int(class_ref) < NUM_CLASSES:
            return TISSUE_CLASSES[int(class_ref)]
    elif isinstance(class_ref, str):
        wanted = class_ref.strip().lower()
        for tissue in TISSUE_CLASSES:
            if wanted in (tissue.key, tissue.name.lower(), str(tissue.index)):
                return tissue
    valid = ", ".join(f"{c.index}={c.key}" for c in TISSUE_CLASSES)
    raise ValueError(f"Unknown tissue class {str(class_ref)[:40]!r}; expected one of {valid}.")


def class_keys(class_refs: Iterable[int | str] | None) -> list[str]:
    """The keys of the named classes in the order given, each once; [] when none is named (ValueError for an unknown
    one, from `resolve_class`)."""
    return list(dict.fromkeys(resolve_class(ref).key for ref in class_refs or ()))


def class_indices(class_refs: Iterable[int | str] | None) -> list[int]:
    """The indices of the named classes; every class when none is named."""
    keys = class_keys(class_refs)
    return [resolve_class(key).index for key in keys] if keys else list(range(NUM_CLASSES))


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding pathmnist.npz: the argument, else $PATHGEN_DATA_DIR, else ~/.medmnist."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return DEFAULT_DATA_DIR


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data-dir and --download, the same in every script that reads PathMNIST."""
    parser.add_argument("--data-dir", default=None,
                        help=f"Folder with pathmnist.npz (default: ${DATA_DIR_ENV} or ~/.medmnist).")
    parser.add_argument("--download", action=argparse.BooleanOptionalAction, default=False,
                        help="Let medmnist download PathMNIST if it is missing (needs network).")


def load_split(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28, 3] and labels int64 [N] of one PathMNIST split, via `medmnist`."""
    import medmnist

    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    root = resolve_data_dir(data_dir)
    data_file = root / DATA_FILE_NAME
    if not download and not data_file.is_file():
        raise DataNotFoundError(
            f"PathMNIST not found: {data_file} does not exist. Either put the official "
            f"'{DATA_FILE_NAME}' (MedMNIST v2, 28x28, https://zenodo.org/records/10519652) in "
            f"{root}, point --data-dir or ${DATA_DIR_ENV} at the folder that holds it, or pass "
            "--download to let medmnist fetch it (needs network)."
        )
    root.mkdir(parents=True, exist_ok=True)
    try:
        dataset = medmnist.PathMNIST(split=split, root=str(root), download=download)
    except Exception as error:  # medmnist raises bare RuntimeError/URLError on network trouble
        raise DataNotFoundError(
            f"Could not load PathMNIST into {root} ({error}). Without network, put the official "
            f"'{DATA_FILE_NAME}' there by hand."
        ) from error
    images = np.asarray(dataset.imgs, dtype=np.uint8)
    labels = np.asarray(dataset.labels, dtype=np.int64).reshape(-1)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{data_file} holds images of shape {images.shape[1:]}, expected {IMAGE_SHAPE}.")
    return images, labels


def per_class_indices(labels: np.ndarray, count: int, seed: int | None = None) -> np.ndarray:
    """Positions of `count` tiles of each class (all of a class that has fewer), class by class: the first ones,
    or a seeded draw without replacement."""
    rng = None if seed is None else np.random.default_rng(seed)
    picks = []
    for c in range(NUM_CLASSES):
        pool = np.flatnonzero(labels == c)
        picks.append(pool[:count] if rng is None else rng.choice(pool, size=min(count, len(pool)), replace=False))
    return np.concatenate(picks)


def check_images(images: np.ndarray) -> np.ndarray:
    """Validates uint8 RGB 28x28 images; returns them as [N, 28, 28, 3] (a single image gets N=1)."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            f"Expected uint8 RGB images of shape [N, 28, 28, 3] or [28, 28, 3], got {array.shape}."
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number) or array.size and (
            array.min() < 0 or array.max() > 255 or not np.all(np.equal(np.mod(array, 1), 0))
        ):
            raise ValueError(
                f"Expected uint8 pixel values in 0..255, got dtype {array.dtype}; "
                "convert with (image * 255).round().astype('uint8') if yours are floats in 0..1."
            )
        array = array.astype(np.uint8)
    if len(array) == 0:
        raise ValueError("Expected at least one image, got an empty array.")
    return array
