"""Flat fields: the few exact colours a scan renders blank glass as, and the step that gives generated tiles them.

A scanner (and PathMNIST's stain normalisation) renders a flat field as one exact RGB value: in train background,
(237, 221, 236) alone is one pixel in twenty, and many tiles are mostly one such value. A diffusion model's output
is continuous, so it draws values near those colours but never the colours themselves. `snap_to_colours` is that
last discrete step: a pixel within `tolerance` grey levels (every channel) of one of a class's flat-field colours
moves onto it, all the way or, with a distance map, to the distance real pixels at that quantile have
(`fit_distance_map`), so that near pixels land on the colour and nothing jumps. `blend_to_colours` decides by
neighbourhoods instead of single pixels: where a pixel's surroundings lie near a colour on average, the pixel is
drawn onto it, so exact colours come as the patches of blank glass a scan has, not as speckle. `shift_to_colours`
moves whole tiles instead: a tile that is mostly glass near a colour is shifted so that its glass lies at the
distance from the colour that an offset map gives, keeping its grain and its tissue as drawn; with a clearance, no
shifted tile is left nearer a perfectly flat tile of its colour than that (`clear_of_flat`), because train holds
many near-identical blank tiles at exactly those colours and a tile that close to one is a near-copy of them all.
The colours are the class's most frequent train pixel values (`frequent_colours`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

from .checks import is_number_in, is_whole_in

MAX_COLOURS = 16
MAX_TOLERANCE = 16
MAX_WINDOW = 9
# The largest L2 distance between two tiles scaled to [0, 1]: 28 × 28 × 3 values, each at most 1 apart.
MAX_CLEARANCE = float(np.sqrt(28 * 28 * 3))
# The step, in grey levels, by which a shifted tile still nearer its flat tile than the clearance moves on.
CLEARANCE_STEP = 0.5
# What counts as an exact-colour tile: half its pixels within 1 grey level of one of the class's 4 commonest values.
EXACT_COLOURS, EXACT_TOLERANCE, EXACT_MIN_SHARE = 4, 1, 0.5


def frequent_colours(tiles: np.ndarray, count: int) -> np.ndarray:
    """uint8 [count, 3]: the `count` most frequent RGB values among the pixels of `tiles` (uint8 [n, 28, 28, 3]), most
    frequent first (ties: the lower value first)."""
    pixels = tiles.reshape(-1, 3).astype(np.int64)
    codes = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    values, counts = np.unique(codes, return_counts=True)
    top = values[np.argsort(-counts, kind="stable")[:count]]
    return np.stack([(top >> 16) & 255, (top >> 8) & 255, top & 255], axis=1).astype(np.uint8)


def pixel_shares(tiles: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """float [k]: the share of all pixels of `tiles` (uint8 [n, 28, 28, 3]) that are exactly each of `colours` ([k, 3])."""
    pixels = tiles.reshape(-1, 3)
    return np.array([(pixels == colour).all(axis=1).mean() for colour in colours.astype(tiles.dtype)])


def colour_distances(tiles: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """int [n, 28, 28, k]: each pixel's largest channel difference to each colour."""
    return np.abs(tiles[..., None, :].astype(np.int16) - colours.astype(np.int16)).max(axis=-1)


def nearest_colours(tiles: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int [n, 28, 28]: each pixel's index of its nearest colour, int [n, 28, 28]: its distance to it)."""
    distances = colour_distances(tiles, colours)
    nearest = distances.argmin(axis=-1)
    return nearest, np.take_along_axis(distances, nearest[..., None], axis=-1)[..., 0]


def snap_to_colours(tiles: np.ndarray, colours: np.ndarray, tolerance: int,
                    distance_map: list[float] | None = None) -> np.ndarray:
    """A copy of `tiles` (uint8 [n, 28, 28, 3]) whose pixels within `tolerance` of a colour (uint8 [k, 3]; the nearest
    where two qualify) are moved onto it: all the way without `distance_map`; with it, a pixel at distance d keeps
    its direction from the colour at distance distance_map[d] (a pixel's difference in each channel scaled by
    distance_map[d] / d and rounded), so a map of zeros snaps and the identity map changes nothing."""
    nearest, distance = nearest_colours(tiles, colours)
    close = distance <= tolerance
    target = colours[nearest[close]].astype(np.float64)
    if distance_map is None:
        moved = target
    else:
        scale = np.asarray(distance_map, dtype=np.float64)[distance[close]] / np.maximum(distance[close], 1)
        moved = target + np.round((tiles[close] - target) * scale[:, None])
    snapped = tiles.copy()
    snapped[close] = np.clip(moved, 0, 255).astype(np.uint8)
    return snapped


def blend_to_colours(tiles: np.ndarray, colours: np.ndarray, start: float, tolerance: int, window: int) -> np.ndarray:
    """A copy of `tiles` (uint8 [n, 28, 28, 3]) drawn onto the colours (uint8 [k, 3]) by neighbourhood: each pixel's
    distance to its nearest colour is averaged over the `window` × `window` square around it (edges repeated); where
    that mean is at most `start` the pixel takes the colour exactly, at `tolerance` or more it is left alone, and in
    between its difference from the colour shrinks in proportion (rounded)."""
    nearest, distance = nearest_colours(tiles, colours)
    local = uniform_filter(distance.astype(np.float64), size=(1, window, window), mode="nearest")
    keep = np.clip((local - start) / (tolerance - start), 0.0, 1.0)[..., None]
    target = colours[nearest].astype(np.float64)
    return np.clip(np.round(target + (tiles - target) * keep), 0, 255).astype(np.uint8)


def tile_offsets(tiles: np.ndarray, colours: np.ndarray, tolerance: int, min_share: float,
                 nearest: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bool [n]: the tiles with a field, int [n]: the index of each tile's largest field's colour, float [n, 3]: each
    tile's offset from its field's colour, zero for tiles without a field).

    A colour's field in a tile is the pixels within `tolerance` of it that have it as their nearest colour; a tile
    has a field when its largest field holds at least `min_share` of its pixels, and its offset is that field's
    median (each channel) minus the colour. `nearest` is `nearest_colours(tiles, colours)` where the caller has it
    already (it does not depend on the tolerance)."""
    nearest, distance = nearest_colours(tiles, colours) if nearest is None else nearest
    within = distance <= tolerance
    shares = np.stack([((nearest == c) & within).mean(axis=(1, 2)) for c in range(len(colours))], axis=1)
    field_colour, has_field = shares.argmax(axis=1), shares.max(axis=1) >= min_share
    offsets = np.zeros((len(tiles), 3))
    for index in np.flatnonzero(has_field):
        field = (nearest[index] == field_colour[index]) & within[index]
        offsets[index] = np.median(tiles[index][field].astype(np.float64), axis=0) - colours[field_colour[index]]
    return has_field, field_colour, offsets


def offset_sizes(offsets: np.ndarray) -> np.ndarray:
    """float [n]: each offset's largest channel difference, the measure `colour_distances` uses for pixels."""
    return np.abs(offsets).max(axis=1)


def shift_to_colours(tiles: np.ndarray, colours: np.ndarray, tolerance: int, min_share: float,
                     offset_map: list[float], clearance: float = 0.0) -> np.ndarray:
    """A copy of `tiles` (uint8 [n, 28, 28, 3]) in which every tile with a field (`tile_offsets`) is moved as a whole,
    along its offset, from offset size d to offset_map[d] (interpolated between whole d), rounded and clipped: the
    identity map changes nothing, a map of zeros puts each field's median on its colour. A tile the move leaves
    nearer than `clearance` to a flat tile of its colour is moved further along its offset (`clear_of_flat`)."""
    has_field, field_colour, offsets = tile_offsets(tiles, colours, tolerance, min_share)
    sizes = offset_sizes(offsets)
    mapped = np.interp(sizes, np.arange(tolerance + 1), np.asarray(offset_map, dtype=np.float64))
    targets = np.where(has_field & (sizes > 0), mapped, sizes)  # a field already on its colour stays there
    shifted = _moved(tiles, offsets, sizes, targets)
    if clearance > 0:
        near = has_field & (flat_distances(shifted, colours[field_colour]) < clearance)
        for index in np.flatnonzero(near):
            shifted[index] = clear_of_flat(tiles[index], colours[field_colour[index]], offsets[index],
                                           targets[index], clearance, tolerance)
    return shifted


def _moved(tiles: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`tiles` moved along their offsets from offset size `sizes` to `targets`, rounded and clipped; a tile whose
    offset is zero moves along (1, 1, 1)."""
    zero = sizes <= 0
    scale = np.where(zero, 1.0, targets / np.maximum(sizes, 1e-12))
    return moved_tiles(tiles, np.where(zero[:, None], targets[:, None], offsets * (scale - 1.0)[:, None]))


def moved_tiles(tiles: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """`tiles` (uint8 [n, 28, 28, 3]) with every pixel of tile i moved by moves[i] (float [n, 3]), rounded, clipped."""
    return np.clip(np.round(tiles + moves[:, None, None, :]), 0, 255).astype(np.uint8)


def flat_distances(tiles: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """float [n]: the L2 distance, pixels scaled to [0, 1], from each tile (uint8 [n, 28, 28, 3]) to a tile that is
    all of its colour (uint8 [n, 3]): the near-copy measure (`pathgen.metrics.nearest_distances`) against a
    perfectly flat tile."""
    differences = (tiles.astype(np.float64) - colours[:, None, None, :]) / 255.0
    return np.sqrt((differences ** 2).sum(axis=(1, 2, 3)))


def clear_of_flat(tile: np.ndarray, colour: np.ndarray, offset: np.ndarray, target: float, clearance: float,
                  tolerance: int) -> np.ndarray:
    """`tile` moved along `offset` (float [3], its field's median minus `colour`) to offset size `target`, or further
    in steps of CLEARANCE_STEP grey levels while it is nearer than `clearance` to a tile that is all `colour`; the
    move stops at `tolerance`, beyond which the glass would no longer count as the colour's field."""
    size = offset_sizes(offset[None])
    for step in np.arange(target, max(target, tolerance) + CLEARANCE_STEP, CLEARANCE_STEP):
        moved = _moved(tile[None], offset[None], size, np.array([min(step, max(target, tolerance))]))[0]
        if flat_distances(moved[None], colour[None])[0] >= clearance:
            break
    return moved


def apply_flat_field(tiles: np.ndarray, spec: dict) -> np.ndarray:
    """`tiles` given one class's flat field (`is_flat_field`): shifted as whole tiles when the spec has a `shift`,
    blended by neighbourhood when it has a `blend`, otherwise snapped pixel by pixel (with its distance map, if any)."""
    colours = np.array(spec["colours"], dtype=np.uint8)
    if "shift" in spec:
        shift = spec["shift"]
        return shift_to_colours(tiles, colours, spec["tolerance"], shift["min_share"], shift["offset_map"],
                                shift.get("clearance", 0.0))
    if "blend" in spec:
        return blend_to_colours(tiles, colours, spec["blend"]["start"], spec["tolerance"], spec["blend"]["window"])
    return snap_to_colours(tiles, colours, spec["tolerance"], spec.get("distance_map"))


def fit_distance_map(real_distances: np.ndarray, generated_distances: np.ndarray, tolerance: int) -> list[float]:
    """The map that gives generated pixels within `tolerance` of a colour the real pixels' distribution of distances
    to it (each pixel's distance to its nearest colour, as `nearest_colours` returns them): quantile matching,
    generated distance d (at the middle of its probability mass) to the real distance at the same quantile, real
    distances spread evenly over [d - 0.5, d + 0.5]; non-decreasing, 0 to `tolerance`."""
    real_counts, generated_counts = (np.bincount(distance[distance <= tolerance], minlength=tolerance + 1)
                                     for distance in (real_distances, generated_distances))
    if not real_counts.sum() or not generated_counts.sum():
        return [float(d) for d in range(tolerance + 1)]
    real_cdf = np.concatenate([[0.0], np.cumsum(real_counts) / real_counts.sum()])
    generated_cdf = np.cumsum(generated_counts) / generated_counts.sum()
    middles = generated_cdf - generated_counts / generated_counts.sum() / 2
    edges = np.arange(tolerance + 2) - 0.5  # real distance d's mass spread over [d - 0.5, d + 0.5]
    mapped = np.interp(middles, real_cdf, edges)
    return [round(float(d), 3) for d in np.maximum.accumulate(np.clip(mapped, 0, tolerance))]


def exact_colour_tiles(tiles: np.ndarray, colours: np.ndarray, tolerance: int, min_share: float) -> np.ndarray:
    """Bool [n]: the tiles at least `min_share` of whose pixels lie within `tolerance` grey levels, in every channel,
    of one of `colours` ([k, 3]; none: no tile)."""
    if not len(colours):
        return np.zeros(len(tiles), dtype=bool)
    return (colour_distances(tiles, colours) <= tolerance).any(axis=-1).mean(axis=(1, 2)) >= min_share


def is_flat_field(spec: object) -> bool:
    """A class's flat-field setting: {"colours": 1-16 RGB triples of whole numbers 0-255, "tolerance": 0-16, and
    optionally one of "distance_map": a map (tolerance + 1 non-decreasing numbers from 0 to the tolerance), "blend":
    {"start": a number from 0 up to (not including) the tolerance, "window": an odd whole number 1-9}, or "shift":
    {"min_share": a number in (0, 1], "offset_map": a map, optionally "clearance"}}."""
    steps = {"distance_map", "blend", "shift"}
    if (not isinstance(spec, dict) or not {"colours", "tolerance"} <= set(spec) <= {"colours", "tolerance", *steps}
            or len(steps & set(spec)) > 1):
        return False
    colours, tolerance = spec["colours"], spec["tolerance"]
    if not (isinstance(colours, (list, tuple)) and 1 <= len(colours) <= MAX_COLOURS
            and all(isinstance(colour, (list, tuple)) and len(colour) == 3
                    and all(is_whole_in(value, 0, 255) for value in colour) for colour in colours)
            and is_whole_in(tolerance, 0, MAX_TOLERANCE)):
        return False
    if "blend" in spec:
        return is_blend(spec["blend"], tolerance)
    if "shift" in spec:
        return is_shift(spec["shift"], tolerance)
    return spec.get("distance_map") is None or is_map(spec["distance_map"], tolerance)


def is_map(values: object, tolerance: int) -> bool:
    """A distance or offset map: tolerance + 1 non-decreasing numbers from 0 to the tolerance."""
    return (isinstance(values, (list, tuple)) and len(values) == tolerance + 1
            and all(is_number_in(d, 0.0, float(tolerance)) for d in values)
            and all(a <= b for a, b in zip(values, values[1:], strict=False)))


def is_shift(shift: object, tolerance: int) -> bool:
    """A flat field's whole-tile setting: {"min_share": 0 < share <= 1, "offset_map": a map, and optionally
    "clearance": an L2 distance from 0 to MAX_CLEARANCE}."""
    return (isinstance(shift, dict) and {"min_share", "offset_map"} <= set(shift) <= {"min_share", "offset_map",
                                                                                      "clearance"}
            and is_number_in(shift["min_share"], 0.0, 1.0, include_low=False)
            and is_map(shift["offset_map"], tolerance)
            and is_number_in(shift.get("clearance", 0.0), 0.0, MAX_CLEARANCE))


def is_blend(blend: object, tolerance: int) -> bool:
    """A flat field's neighbourhood setting: {"start": 0 <= start < tolerance, "window": odd, 1-9}."""
    return (isinstance(blend, dict) and set(blend) == {"start", "window"} and tolerance > 0
            and is_number_in(blend["start"], 0.0, float(tolerance)) and blend["start"] < tolerance
            and is_whole_in(blend["window"], 1, MAX_WINDOW) and blend["window"] % 2 == 1)


def normalised_flat_field(spec: dict) -> dict:
    """The stored form: colours as lists of ints, tolerance as an int, the distance map (if any) as floats, the
    blend's start as a float and window as an int, the shift's share and offset map as floats."""
    normalised = {"colours": [[int(value) for value in colour] for colour in spec["colours"]],
                  "tolerance": int(spec["tolerance"])}
    if spec.get("distance_map") is not None:
        normalised["distance_map"] = [float(d) for d in spec["distance_map"]]
    if spec.get("blend") is not None:
        normalised["blend"] = {"start": float(spec["blend"]["start"]), "window": int(spec["blend"]["window"])}
    if spec.get("shift") is not None:
        normalised["shift"] = {"min_share": float(spec["shift"]["min_share"]),
                               "offset_map": [float(d) for d in spec["shift"]["offset_map"]]}
        if "clearance" in spec["shift"]:
            normalised["shift"]["clearance"] = float(spec["shift"]["clearance"])
    return normalised
