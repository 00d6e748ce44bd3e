"""Checks of raw values sent by browsers and API clients, before any rule sees them.

Events are registered with `preprocess=False`, so a wrong type, an out-of-range number or a value outside a
list reaches these checks instead of failing inside the framework; each raises ValueError with a short message
that echoes at most a few dozen characters of what was sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from pathgen.data import TISSUE_CLASSES, TissueClass

from .errors import shown

TISSUE_CHOICES = tuple((c.name, c.key) for c in TISSUE_CLASSES)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole_number(value: object, name: str, low: int, high: int) -> int:
    if not _is_number(value) or not float(value).is_integer() or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {shown(value)}.")
    return int(value)


def number(value: object, name: str, low: float, high: float) -> float:
    if not _is_number(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}, got {shown(value)}.")
    return float(value)


def flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {shown(value)}.")
    return value


def choice(value: object, name: str, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}; got {shown(value)}.")
    return value


def tissue(value: object, name: str = "Tissue type") -> TissueClass:
    """A tissue class by key (what the dropdowns send) or display name."""
    for c in TISSUE_CLASSES:
        if isinstance(value, str) and value.strip().lower() in (c.key, c.name.lower()):
            return c
    raise ValueError(f"{name} must be one of the nine tissue types ({', '.join(c.key for c in TISSUE_CLASSES)}); "
                     f"got {shown(value)}.")


def tissues(values: object, name: str = "Tissue types") -> list[TissueClass]:
    if values is None:
        return []
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of tissue types, got {shown(values)}.")
    return [tissue(v, name) for v in values]


def optional_seed(text: object) -> int | None:
    """A seed typed by the user: blank means None (random); otherwise a whole number from 0 to 2**63 - 1."""
    if text is not None and not isinstance(text, (str, int)) or isinstance(text, bool):
        raise ValueError(f"Seed must be a whole number or blank, got {shown(text)}.")
    text = "" if text is None else str(text).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise ValueError(f"Seed must be a whole number from 0 to {2**63 - 1}, or blank for random; got {shown(text)}.")
    return int(text)


def position(value: object, count: int, name: str = "Tile position") -> int | None:
    """A clicked tile's index among `count` shown, or None when nothing is selected."""
    if value is None:
        return None
    if count == 0:
        raise ValueError("No tiles are shown yet.")
    return whole_number(value, name, 0, count - 1)
