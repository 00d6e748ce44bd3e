"""Realism of generated tile sets in one model's feature space, each figure beside a second real set.

For every class, two disjoint random halves of its val tiles (capped at `--fd-size`) serve as the real
reference and as the real-vs-real floor. Each candidate set (unfiltered at the chosen profile, unfiltered
without guidance, the shipped bank) is compared with the reference at an equal size: the Fréchet distance and
k-NN precision, recall, density and coverage, and how often the model recognises each tile's class. Run once
in the filter's (classifier's) features and once in the independent judge's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pathgen.data import NUM_CLASSES, TISSUE_CLASSES  # noqa: E402
from pathgen.metrics import (  # noqa: E402
    classification_report,
    frechet_distance,
    on_principal_axes,
    precision_recall_density_coverage,
)

PRDC_K = 5
PRDC_FIGURES = ("precision", "recall", "density", "coverage")


class FeatureModel(Protocol):
    def features(self, images: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...


@dataclass
class TileSets:
    """uint8 tiles per class: the two real halves and the named candidate sets (some classes may be empty)."""

    reference: list[np.ndarray]
    real: list[np.ndarray]
    candidates: dict[str, list[np.ndarray]]


def split_real(val_images: np.ndarray, val_labels: np.ndarray, size: int, seed: int) -> tuple[list, list]:
    """Per class, two disjoint random sets of min(size, half the class's val tiles)."""
    rng = np.random.default_rng(seed)
    reference, real = [], []
    for tissue in TISSUE_CLASSES:
        indices = rng.permutation(np.flatnonzero(val_labels == tissue.index))
        count = min(size, len(indices) // 2)
        reference.append(val_images[indices[:count]])
        real.append(val_images[indices[count : 2 * count]])
    return reference, real


def frechet(reference: np.ndarray, real: np.ndarray, generated: np.ndarray, dims: int) -> dict:
    """FD of generated and of another real set to the same real reference set, all of one size."""
    if dims:
        reference, real, generated = on_principal_axes(reference, real, generated, dims=dims)
    generated_fd, real_fd = frechet_distance(generated, reference), frechet_distance(real, reference)
    return {"images_per_set": len(reference), "generated_vs_real": generated_fd, "real_vs_real": real_fd,
            "ratio": generated_fd / real_fd if real_fd > 0 else None}


def knn_figures(reference: np.ndarray, real: np.ndarray, candidate: np.ndarray) -> dict:
    """prdc of the candidate and of the second real set against the reference, at the candidate's size."""
    size = min(len(reference), len(candidate))
    return precision_recall_density_coverage(reference[:size], candidate[:size], PRDC_K) | {
        "real_vs_real": precision_recall_density_coverage(reference[:size], real[:size], PRDC_K)}


def summarise(per_class: dict) -> dict:
    """Lowest and mean of each prdc figure over the classes, beside the same for real vs real."""
    summary = {}
    for name in PRDC_FIGURES if per_class else ():
        values = [v[name] for v in per_class.values()]
        floor = [v["real_vs_real"][name] for v in per_class.values()]
        summary[name] = {"min": min(values), "mean": float(np.mean(values)),
                         "real_vs_real_min": min(floor), "real_vs_real_mean": float(np.mean(floor))}
    return summary


def recognised(model: FeatureModel, tiles: list[np.ndarray]) -> dict:
    """Classification report of the model's top class against each tile's intended class."""
    kept = [(c, images) for c, images in enumerate(tiles) if len(images)]
    labels = np.concatenate([np.full(len(images), c) for c, images in kept])
    report = classification_report(labels, model.predict_proba(np.concatenate([x for _, x in kept])).argmax(axis=1))
    report["images_per_class"] = [len(images) for images in tiles]
    report["min_f1"] = min(v["f1"] for v in report["per_class"].values() if v["support"])
    return report


def compare_set(features: dict, name: str, dims: int) -> dict:
    """FD and prdc per class of one candidate set; classes with fewer than 3 tiles are left out."""
    fd, knn, pooled = {}, {}, {"reference": [], "real": [], "candidate": []}
    for tissue in TISSUE_CLASSES:
        reference, real = features["reference"][tissue.index], features["real"][tissue.index]
        candidate = features[name][tissue.index]
        size = min(len(reference), len(candidate))
        if size < 3:
            continue
        fd[tissue.key] = frechet(reference[:size], real[:size], candidate[:size], dims)
        knn[tissue.key] = knn_figures(reference, real, candidate)
        for key, value in (("reference", reference), ("real", real), ("candidate", candidate)):
            pooled[key].append(value[:size])
    overall = None
    if fd:
        pooled = {key: np.concatenate(value) for key, value in pooled.items()}
        overall = frechet(pooled["reference"], pooled["real"], pooled["candidate"], dims)
    return {"frechet": {"per_class": fd, "overall": overall},
            "prdc": {"k": PRDC_K, "per_class": knn, "summary": summarise(knn)}}


def feature_space_report(model: FeatureModel, sets: TileSets, description: str, dims: int = 0) -> dict:
    """Every realism figure of every candidate set in `model`'s features, beside real vs real."""
    def embed(tiles: list[np.ndarray]) -> list[np.ndarray]:
        return [model.features(x) if len(x) else np.zeros((0, 1), np.float32) for x in tiles]

    features = {"reference": embed(sets.reference), "real": embed(sets.real)}
    features |= {name: embed(tiles) for name, tiles in sets.candidates.items()}
    real_tiles = [np.concatenate(pair) for pair in zip(sets.reference, sets.real, strict=True)]
    return {"features": description,
            "recognisability": {"real_val": recognised(model, real_tiles)}
                               | {name: recognised(model, tiles) for name, tiles in sets.candidates.items()},
            **{name: compare_set(features, name, dims) for name in sets.candidates}}


def plot_coverage(spaces: dict, path) -> None:
    """Per-class coverage bars of every candidate set beside real vs real, one panel per feature space."""
    figure, axes = plt.subplots(1, len(spaces), figsize=(7 * len(spaces), 4.0), squeeze=False)
    for axis, (space, report) in zip(axes[0], spaces.items(), strict=True):
        names = [n for n in report if isinstance(report[n], dict) and "prdc" in report[n]]
        first = report[names[0]]["prdc"]["per_class"]
        bars = {"real vs real": [first.get(t.key, {}).get("real_vs_real", {}).get("coverage", np.nan)
                                 for t in TISSUE_CLASSES]}
        bars |= {n: [report[n]["prdc"]["per_class"].get(t.key, {}).get("coverage", np.nan) for t in TISSUE_CLASSES]
                 for n in names}
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars.items()):
            axis.bar(np.arange(NUM_CLASSES) + (i - (len(bars) - 1) / 2) * width, values, width, label=label)
        axis.axhline(0.85, color="grey", linestyle="--", linewidth=0.8)
        axis.set_xticks(np.arange(NUM_CLASSES), [t.key[:10] for t in TISSUE_CLASSES], rotation=45, ha="right",
                        fontsize=8)
        axis.set_ylim(0, 1.05)
        axis.set_ylabel(f"coverage (k = {PRDC_K})")
        axis.set_title(f"{space} features", fontsize=9)
        # Above the bars: every corner of the axes holds a bar that a legend there would hide.
        axis.legend(fontsize=7, ncol=len(bars), loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
