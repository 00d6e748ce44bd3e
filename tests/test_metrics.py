import numpy as np
import pytest

from pathgen.metrics import frechet_distance, texture_energy


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
