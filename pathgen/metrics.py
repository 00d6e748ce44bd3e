"""Classification, calibration, realism and memorisation measures shared by the scripts."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from prdc import compute_prdc
from prdc.prdc import compute_nearest_neighbour_distances, compute_pairwise_distance
from scipy import linalg
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from .data import CLASS_NAMES, NUM_CLASSES


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            error += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(error)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising validation negative log-likelihood (Guo et al., 2017)."""
    logits_t = torch.from_numpy(logits).double()
    labels_t = torch.from_numpy(labels).long()
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_temperature], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_temperature.exp(), labels_t)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_temperature.detach().exp())


def classification_report(labels: np.ndarray, predictions: np.ndarray) -> dict:
    """Accuracy, macro precision/recall/F1 and per-class figures, keyed by class name."""
    classes = list(range(NUM_CLASSES))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
    }


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula)."""
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    # atleast_2d: np.cov of a single feature is a scalar, which sqrtm cannot take.
    cov_a = np.atleast_2d(np.cov(features_a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(features_b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def on_principal_axes(reference: np.ndarray, *others: np.ndarray, dims: int) -> tuple[np.ndarray, ...]:
    """`reference` and `others` projected onto the first `dims` principal axes of `reference` alone, so no compared
    set shapes the projection; with few tiles in many dimensions this keeps covariances well conditioned."""
    mean = reference.mean(axis=0)
    axes = np.linalg.svd(reference - mean, full_matrices=False)[2][:dims].T
    return tuple((x - mean) @ axes for x in (reference, *others))


NEAREST_K = 5  # neighbours per k-NN ball in every realism figure


def feature_pair(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float32, checked to be [N, D] arrays of one D."""
    real, generated = np.asarray(real, np.float32), np.asarray(generated, np.float32)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(f"expected two [N, D] feature arrays of one D, got {real.shape} and {generated.shape}")
    return real, generated


def precision_recall_density_coverage(real: np.ndarray, generated: np.ndarray, k: int = NEAREST_K) -> dict:
    """k-NN precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of
    `generated` features against the `real` ones, via the `prdc` package. Precision: share of generated points
    inside some real point's k-NN ball (fidelity); recall: share of real points inside some generated point's
    ball; coverage: share of real balls holding a generated point (variety, robust to outliers); density: mean
    count of real balls per generated point / k (1 for a second real set). k shrinks for sets under k + 2."""
    real, generated = feature_pair(real, generated)
    if min(len(real), len(generated)) < 3:
        raise ValueError(f"k-NN figures need at least 3 points per set, got {len(real)} and {len(generated)}")
    k = min(k, len(real) - 2, len(generated) - 2)  # prdc needs the (k+1)-th neighbour besides the point itself
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes on every call
        values = compute_prdc(real_features=real, fake_features=generated, nearest_k=k)
    return {name: float(values[name]) for name in ("precision", "recall", "density", "coverage")} | {
        "k": k, "images_per_set": min(len(real), len(generated))}


def knn_membership(real: np.ndarray, generated: np.ndarray, k: int = NEAREST_K) -> tuple[np.ndarray, np.ndarray]:
    """Per point, the tests behind k-NN coverage and precision (as `precision_recall_density_coverage` counts
    them, from `prdc`'s distances): for each real point, whether some generated point lies inside its k-NN
    ball; for each generated point, whether it lies inside some real point's ball. Their means are coverage
    and precision; split by a property of the tiles, they say where a set falls short."""
    real, generated = feature_pair(real, generated)
    if len(real) < k + 2:
        raise ValueError(f"k-NN membership needs N >= {k + 2} real points (k = {k}), got {len(real)}")
    radii = compute_nearest_neighbour_distances(real, k)
    inside = compute_pairwise_distance(real, generated) < radii[:, None]
    return inside.any(axis=1), inside.any(axis=0)


def texture_energy(images: np.ndarray) -> np.ndarray:
    """Per image uint8 [N, 28, 28, 3]: the mean absolute grey-level step between neighbouring pixels (0-255).
    Fine texture (nuclei, fibres, stain grain) raises it; smooth or flat tiles score low."""
    grey = images.astype(np.float32).mean(axis=-1)
    return np.abs(np.diff(grey, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2))


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the L2 pixel distance (pixels scaled to [0, 1]) to, and the index of, its nearest
    reference image.

    The square is expanded on the 0-255 pixel values in float64: for uint8 images every product and sum is an
    integer below 2**31, held exactly, so distances come out exact. In float32 the expansion errs by a few
    thousandths on bright tiles (squared norms near 2300 on [0, 1]), the size of background's near-copy margin.
    """
    ref = torch.from_numpy(references.reshape(len(references), -1).astype(np.float64))
    ref_sq = (ref * ref).sum(dim=1)
    distances, indices = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(queries[start : start + chunk].reshape(-1, ref.shape[1]).astype(np.float64))
        squared = (q * q).sum(dim=1, keepdim=True) - 2 * q @ ref.T + ref_sq
        best, where = squared.clamp(min=0).min(dim=1)
        distances.append(best.sqrt() / 255.0)
        indices.append(where)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def near_copy_thresholds(real_distances: np.ndarray, real_labels: np.ndarray, percentile: float) -> np.ndarray:
    """Per class, the `percentile` of held-out real images' nearest-train distances: a generated image closer
    than its class's value to a train image is a near-copy. Per class, because flat background tiles have exact
    duplicates across splits and would set a pooled threshold far below what counts as a copy of textured tissue."""
    return np.array([np.percentile(real_distances[real_labels == c], percentile) for c in range(NUM_CLASSES)])
