"""Argument checks shared by the library's public functions: numbers in a range, with bools refused."""

from __future__ import annotations

import numpy as np


def is_whole_in(value: object, low: int, high: int) -> bool:
    """True for an int (or numpy integer, not a bool) with low <= value <= high."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and bool(low <= value <= high)


def is_number_in(value: object, low: float, high: float, *, include_low: bool = True) -> bool:
    """True for an int or float (numpy ones too, not a bool, not NaN) in [low, high], or (low, high] when
    `include_low` is False."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return bool((low <= value if include_low else low < value) and value <= high)
