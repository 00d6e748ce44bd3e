"""Flat fields: the few exact colours a scan renders blank glass as, and the step that gives generated tiles them.

A scanner (and PathMNIST's stain normalisation) renders a flat field as one exact RGB value: in train background,
(237, 221, 236) alone is one pixel in twenty, and many tiles are mostly one such value. A diffusion model's output
is continuous, so it draws values near those colours but never the colours themselves. `snap_to_colours` is that
last discrete step: a pixel within `tolerance` grey levels (every channel) of one of a class's flat-field colours
becomes that colour. The colours are the class's most frequent train pixel values (`frequent_colours`).
"""

from __future__ import annotations

import numpy as np

from .checks import is_whole_in

MAX_COLOURS = 16
MAX_TOLERANCE = 16


def frequent_colours(tiles: np.ndarray, count: int) -> np.ndarray:
    """uint8 [count, 3]: the `count` most frequent RGB values among the pixels of `tiles` (uint8 [n, 28, 28, 3]), most
    frequent first (ties: the lower value first)."""
    pixels = tiles.reshape(-1, 3).astype(np.int64)
    codes = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    top = values[np.argsort(-counts, kind="stable")[:count]]
    return np.stack([(top >> 16) & 255, (top >> 8) & 255, top & 255], axis=1).astype(np.uint8)


def colour_distances(tiles: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """int [n, 28, 28, k]: each pixel's largest channel difference to each colour."""
    return np.abs(tiles[..., None, :].astype(np.int16) - colours.astype(np.int16)).max(axis=-1)


def snap_to_colours(tiles: np.ndarray, colours: np.ndarray, tolerance: int) -> np.ndarray:
    """A copy of `tiles` (uint8 [n, 28, 28, 3]) whose pixels within `tolerance` of a colour (uint8 [k, 3]) are that
    colour (the nearest, where two qualify)."""
    distances = colour_distances(tiles, colours)
    nearest = distances.argmin(axis=-1)
    snapped = tiles.copy()
    close = np.take_along_axis(distances, nearest[..., None], axis=-1)[..., 0] <= tolerance
    snapped[close] = colours[nearest[close]]
    return snapped


def exact_colour_tiles(tiles: np.ndarray, colours: np.ndarray, tolerance: int, min_share: float) -> np.ndarray:
    """Bool [n]: the tiles at least `min_share` of whose pixels lie within `tolerance` grey levels, in every channel,
    of one of `colours` ([k, 3]; none: no tile)."""
    if not len(colours):
        return np.zeros(len(tiles), dtype=bool)
    return (colour_distances(tiles, colours) <= tolerance).any(axis=-1).mean(axis=(1, 2)) >= min_share


def is_flat_field(spec: object) -> bool:
    """A class's flat-field setting: {"colours": 1-16 RGB triples of whole numbers 0-255, "tolerance": 0-16}."""
    if not isinstance(spec, dict) or set(spec) != {"colours", "tolerance"}:
        return False
    colours = spec["colours"]
    return (isinstance(colours, (list, tuple)) and 1 <= len(colours) <= MAX_COLOURS
            and all(isinstance(colour, (list, tuple)) and len(colour) == 3
                    and all(is_whole_in(value, 0, 255) for value in colour) for colour in colours)
            and is_whole_in(spec["tolerance"], 0, MAX_TOLERANCE))


def normalised_flat_field(spec: dict) -> dict:
    """The stored form: colours as lists of ints, tolerance as an int."""
    return {"colours": [[int(value) for value in colour] for colour in spec["colours"]],
            "tolerance": int(spec["tolerance"])}
