import math

import numpy as np
import pytest

from pathgen.checks import is_number_in, is_whole_in


@pytest.mark.parametrize("value, expected", [
    (1, True), (5, True), (np.int64(3), True), (0, False), (6, False),
    (True, False), (2.0, False), ("3", False), (None, False),
])
def test_is_whole_in(value, expected):
    assert is_whole_in(value, 1, 5) is expected


@pytest.mark.parametrize("value, expected", [
    (0, True), (0.5, True), (1, True), (np.float32(0.25), True), (np.int64(1), True),
    (-0.01, False), (1.01, False), (math.nan, False), (math.inf, False), (False, False), ("0.5", False),
])
def test_is_number_in(value, expected):
    assert is_number_in(value, 0.0, 1.0) is expected


def test_is_number_in_can_exclude_the_lower_bound():
    assert not is_number_in(0.0, 0.0, 1.0, include_low=False)
    assert is_number_in(1e-9, 0.0, 1.0, include_low=False)
    assert is_number_in(1.0, 0.0, 1.0, include_low=False)
