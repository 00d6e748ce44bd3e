import numpy as np
import pytest

from pathgen.metrics import (
    frechet_distance,
    knn_membership,
    nearest_distances,
    precision_recall_density_coverage,
    texture_energy,
)


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    b = rng.normal(size=(4000, 8))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # Same covariance (identity), means 1 apart in each of 8 dimensions: the distance is 8.
    assert frechet_distance(a, b + 1) == pytest.approx(8, rel=0.05)
    # Same mean, standard deviations 1 and 2: trace(I + 4I - 2 * 2I) = 8.
    assert frechet_distance(a, 2 * b) == pytest.approx(8, rel=0.1)


def test_texture_energy_of_flat_striped_and_checkered_tiles():
    flat = np.full((1, 28, 28, 3), 200, np.uint8)
    stripes = flat.copy()
    stripes[:, :, ::2] = 100  # columns alternate 200/100: a step of 100 across, none down
    checkers = flat.copy()
    checkers[:, ::2, ::2] = checkers[:, 1::2, 1::2] = 100  # a step of 100 both ways
    np.testing.assert_allclose(texture_energy(np.concatenate([flat, stripes, checkers])), [0, 100, 200])


def test_prdc_of_identical_sets_is_perfect():
    real = np.random.default_rng(0).normal(size=(200, 16))
    figures = precision_recall_density_coverage(real, real.copy(), k=5)
    assert figures["precision"] == figures["recall"] == figures["coverage"] == 1
    assert figures["density"] == pytest.approx(1, abs=0.05) and figures["k"] == 5


def test_prdc_sees_a_collapsed_set_as_faithful_but_narrow():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    # Every generated point sits near one of three real points: precise, yet it covers almost nothing.
    collapsed = real[:3].repeat(100, axis=0) + rng.normal(scale=0.01, size=(300, 16))
    figures = precision_recall_density_coverage(real, collapsed, k=5)
    assert figures["precision"] == 1
    # Each of the three spots lies in its own real point's k-NN ball and in those of a few neighbours.
    assert figures["coverage"] < 0.15 and figures["recall"] < 0.05
    # A second draw from the same distribution covers most of it (k-NN balls of 300 points in 16-d).
    second = precision_recall_density_coverage(real, rng.normal(size=(300, 16)), k=5)
    assert second["coverage"] > 0.8 and second["recall"] > 0.8
    # Shifted far away: neither faithful nor covering.
    shifted = precision_recall_density_coverage(real, rng.normal(size=(300, 16)) + 10, k=5)
    assert shifted["precision"] == shifted["coverage"] == shifted["recall"] == 0


def test_prdc_shrinks_k_for_small_sets_and_refuses_bad_input():
    rng = np.random.default_rng(0)
    assert precision_recall_density_coverage(rng.normal(size=(4, 3)), rng.normal(size=(6, 3)), k=5)["k"] == 2
    with pytest.raises(ValueError, match="at least 3"):
        precision_recall_density_coverage(rng.normal(size=(2, 3)), rng.normal(size=(6, 3)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        precision_recall_density_coverage(rng.normal(size=(6, 3)), rng.normal(size=(6, 4)))


def test_knn_membership_counts_what_coverage_and_precision_average():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(120, 8))
    # Half the generated points sit on the real cloud, half far off it: only the first half can be inside a ball.
    generated = np.concatenate([rng.normal(size=(40, 8)), rng.normal(size=(40, 8)) + 25])
    covered, precise = knn_membership(real, generated, k=5)
    figures = precision_recall_density_coverage(real, generated, k=5)
    assert covered.shape == (120,) and precise.shape == (80,)
    assert covered.mean() == pytest.approx(figures["coverage"]) and precise.mean() == pytest.approx(figures["precision"])
    assert not precise[40:].any() and precise[:40].mean() > 0.5
    with pytest.raises(ValueError, match="N >= 7"):
        knn_membership(real[:6], generated)


def test_nearest_distances_are_exact_for_bright_and_dark_tiles():
    bright, dark = np.full((28, 28, 3), 250, np.uint8), np.full((28, 28, 3), 10, np.uint8)
    nudged = bright.copy()
    nudged[5, 7, 1] = 251
    references = np.stack([dark, bright])
    distances, indices = nearest_distances(np.stack([bright, dark, nudged]), references)
    # Expanded in float32 these come out thousandths off: twins apart, one grey level blurred.
    assert distances.tolist() == [0.0, 0.0, 1 / 255] and indices.tolist() == [1, 0, 1]
    far, _ = nearest_distances(dark[None], bright[None])
    assert far[0] == pytest.approx(np.sqrt(28 * 28 * 3) * 240 / 255, rel=1e-12)
