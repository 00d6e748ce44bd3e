"""Fit one class's flat-field colours and snapping tolerance (pathgen.flat_fields) from train tiles.

    python -m training.fit_flat_fields --data-dir ../shared/data --generator GENERATOR_DIR --class background --write

The colours are the class's --colours most frequent train pixel values. The tolerance is chosen so that the
generator's tiles carry exact colours as often as train tiles do: --count unfiltered tiles are drawn with the
--profile settings (any flat fields the class already has left out), snapped at each candidate tolerance (with
the distance map fitted for it, unless --no-distance-map snaps all the way; with --blend-window, blended by
neighbourhood from each of --blend-starts to each tolerance above it instead; with --shift, moved as whole tiles by
an offset map fitted for it, which gives generated tiles' glass the train tiles' distribution of offsets from the
colours), and for each the share of
*exact-colour tiles* (at least --min-share of pixels within k grey levels of a colour) is compared with the train
tiles' share at every k in --measure-tolerances. The candidate with the smallest mean absolute difference wins
(ties: the smaller tolerance, then the smaller start). Only train tiles and generated tiles are read: nothing here
sees val, test, the classifier or the judge. With --write it goes into the profile's `flat_fields` in the folder's
generator_config.json, and the figures with provenance into flat_fields.json beside it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from pathgen.data import resolve_class
from pathgen.flat_fields import (
    MAX_COLOURS,
    MAX_TOLERANCE,
    MAX_WINDOW,
    apply_flat_field,
    exact_colour_tiles,
    fit_distance_map,
    frequent_colours,
    nearest_colours,
    offset_sizes,
    pixel_shares,
    tile_offsets,
)
from pathgen.generation import SamplingProfiles, load_generator, read_generator_config, write_sampling_defaults
from pathgen.metrics import nearest_distances
from training.cli import add_class_sample_arguments, class_train_tiles
from training.provenance import command_line, describe_model

RECORD_NAME = "flat_fields.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_class_sample_arguments(parser, profile_help="Sampling profile to fit and write.", count=400, seed=2024)
    parser.add_argument("--colours", type=int, default=4, help=f"Most frequent train pixel values used (1-{MAX_COLOURS}).")
    parser.add_argument("--tolerances", type=int, nargs="+", default=list(range(MAX_TOLERANCE + 1)),
                        help=f"Candidate snapping tolerances, grey levels in every channel (0-{MAX_TOLERANCE}).")
    parser.add_argument("--measure-tolerances", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="Tolerances k at which exact-colour tile shares are compared (0-255).")
    parser.add_argument("--min-share", type=float, default=0.5,
                        help="Share of a tile's pixels within k of a colour that makes it an exact-colour tile.")
    parser.add_argument("--distance-map", action=argparse.BooleanOptionalAction, default=True,
                        help="Move pixels within the tolerance by a distance map fitted to train (quantile matching of "
                             "distances to the colours), not all the way onto the colour (--no-distance-map).")
    parser.add_argument("--blend-window", type=int, default=0,
                        help=f"Blend by neighbourhood (pathgen.flat_fields.blend_to_colours) over this odd window, 1-"
                             f"{MAX_WINDOW}, instead of snapping pixel by pixel (0: snap; blending, --distance-map does not apply).")
    parser.add_argument("--blend-starts", type=int, nargs="+", default=list(range(9)),
                        help="With --blend-window: candidate mean distances at and below which pixels take the colour.")
    parser.add_argument("--shift", action=argparse.BooleanOptionalAction, default=False,
                        help="Move whole tiles whose glass (pixels within the tolerance of a colour) holds at least "
                             "--min-share of the tile, by an offset map fitted to train (quantile matching of the "
                             "glass's median offset from its colour), instead of snapping pixels.")
    parser.add_argument("--clearance-percentile", type=float, default=None,
                        help="With --shift: keep every shifted tile at least this percentile (0-100) of the nearest-"
                             "tile distances between two random halves of the class's train tiles away from a flat "
                             "tile of its colour, so that no shift makes a near-copy of train's blank tiles "
                             "(default: no clearance).")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=False,
                        help="Write the fitted colours and tolerance into the generator folder (default: print only).")
    args = parser.parse_args(argv)
    if not 1 <= args.colours <= MAX_COLOURS or args.count < 1 or not 0 < args.min_share <= 1:
        parser.error(f"--colours must be 1-{MAX_COLOURS}, --count at least 1, --min-share in (0, 1].")
    if not all(0 <= t <= MAX_TOLERANCE for t in args.tolerances) or not all(0 <= k <= 255 for k in args.measure_tolerances):
        parser.error(f"--tolerances must be 0-{MAX_TOLERANCE} and --measure-tolerances 0-255.")
    if args.clearance_percentile is not None and not (args.shift and 0 <= args.clearance_percentile <= 100):
        parser.error("--clearance-percentile needs --shift and must be 0-100.")
    if args.shift and args.blend_window:
        parser.error("--shift and --blend-window are different steps: give one.")
    if args.blend_window and (args.blend_window % 2 == 0 or not 1 <= args.blend_window <= MAX_WINDOW
                              or not all(0 <= a < MAX_TOLERANCE for a in args.blend_starts)
                              or not any(a < t for a in args.blend_starts for t in args.tolerances)):
        parser.error(f"--blend-window must be 0 or odd 1-{MAX_WINDOW}; --blend-starts 0-{MAX_TOLERANCE - 1}, one under a "
                     "tolerance.")
    try:
        resolve_class(args.tissue)
    except ValueError as error:
        parser.error(str(error))
    return args


def exact_shares(tiles: np.ndarray, colours: np.ndarray, measure: list[int], min_share: float) -> list[float]:
    """The share of exact-colour tiles among `tiles` at each tolerance in `measure`."""
    return [float(exact_colour_tiles(tiles, colours, k, min_share).mean()) for k in measure]


def choose_candidate(train: list[float], shares: dict[tuple, list[float]]) -> tuple[tuple, dict[tuple, float]]:
    """The candidate whose shares are nearest train's (mean absolute difference; ties: the smaller key, a key being
    (tolerance,) or (tolerance, blend start)), and every candidate's error."""
    errors = {key: float(np.abs(np.array(values) - np.array(train)).mean()) for key, values in shares.items()}
    return min(errors, key=lambda key: (errors[key], key)), errors


def unsnapped_tiles(args: argparse.Namespace, class_index: int, key: str) -> np.ndarray:
    """--count tiles from the profile as it samples them without the class's flat fields."""
    generator = load_generator(args.generator)
    settings = generator.profiles.get(args.profile)
    others = {name: spec for name, spec in settings.flat_fields.items() if name != key}
    setattr(generator.profiles, args.profile, replace(settings, flat_fields=others))
    return generator.generate(class_index, args.count, seed=args.seed, profile=args.profile)


def train_clearance(tiles: np.ndarray, percentile: float, seed: int) -> float:
    """The `percentile` of the nearest-tile distances (`nearest_distances`) from one random half of `tiles` to the
    other: what a near-copy is among the class's own train tiles, read without val or test."""
    order = np.random.default_rng(seed).permutation(len(tiles))
    half = len(tiles) // 2
    distances, _ = nearest_distances(tiles[order[half:]], tiles[order[:half]])
    return float(np.percentile(distances, percentile))


def candidate_specs(args: argparse.Namespace, colours: np.ndarray, class_tiles: np.ndarray,
                    generated: np.ndarray, clearance: float | None = None) -> dict[tuple, dict]:
    """Every flat field the fit compares, keyed (tolerance,) or, blending, (tolerance, start)."""
    base = {"colours": colours.tolist()}
    tolerances = sorted(set(args.tolerances))
    if args.shift:
        # Every candidate's map reads the same nearest colours: computed once, not once per tolerance.
        nearest = [(tiles, nearest_colours(tiles, colours)) for tiles in (class_tiles, generated)]
        extra = {} if clearance is None else {"clearance": clearance}
        return {(t,): base | {"tolerance": t, "shift": {"min_share": args.min_share, "offset_map": fit_offset_map(
            nearest, colours, t, args.min_share)} | extra} for t in tolerances}
    if args.blend_window:
        return {(t, a): base | {"tolerance": t, "blend": {"start": a, "window": args.blend_window}}
                for t in tolerances for a in sorted(set(args.blend_starts)) if a < t}
    if not args.distance_map:
        return {(t,): base | {"tolerance": t} for t in tolerances}
    # Every candidate's map reads the same distances: computed once, not once per tolerance.
    real_distances, generated_distances = (nearest_colours(tiles, colours)[1] for tiles in (class_tiles, generated))
    return {(t,): base | {"tolerance": t, "distance_map": fit_distance_map(real_distances, generated_distances, t)}
            for t in tolerances}


def whole_offsets(tiles: np.ndarray, nearest: tuple[np.ndarray, np.ndarray], colours: np.ndarray, tolerance: int,
                  min_share: float) -> np.ndarray:
    """int [m]: the offset sizes (`offset_sizes`, rounded to whole grey levels) of the tiles with a field; `nearest`
    is `nearest_colours(tiles, colours)`."""
    has_field, _, offsets = tile_offsets(tiles, colours, tolerance, min_share, nearest)
    return np.rint(offset_sizes(offsets[has_field])).astype(int)


def fit_offset_map(nearest: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]], colours: np.ndarray,
                   tolerance: int, min_share: float) -> list[float]:
    """The offset map that gives generated tiles with a field the train tiles' distribution of offset sizes: the
    distance map's quantile matching (`fit_distance_map`) applied to tiles' offsets instead of pixels' distances.
    `nearest` is [(train tiles, their nearest colours), (generated tiles, theirs)]."""
    real, ours = (whole_offsets(tiles, near, colours, tolerance, min_share) for tiles, near in nearest)
    return fit_distance_map(real, ours, tolerance)


def offset_summary(tiles: np.ndarray, colours: np.ndarray, tolerance: int, min_share: float) -> dict:
    """How far the glass of tiles with a field sits from its colour: the share of tiles with a field, the quartiles
    of their offset sizes, and the mean share of their glass pixels within 1 grey level of the glass's own median."""
    nearest, distance = nearest_colours(tiles, colours)
    has_field, field_colour, offsets = tile_offsets(tiles, colours, tolerance, min_share, (nearest, distance))
    near_median = []
    for index in np.flatnonzero(has_field):
        glass = tiles[index][(nearest[index] == field_colour[index]) & (distance[index] <= tolerance)]
        median = colours[field_colour[index]] + offsets[index]
        near_median.append(float((np.abs(glass - median).max(axis=-1) <= 1).mean()))
    sizes = offset_sizes(offsets[has_field])
    quartiles = np.percentile(sizes, [25, 50, 75]).tolist() if len(sizes) else [None] * 3
    return {"tiles": len(tiles), "with_field": float(has_field.mean()), "offset_quartiles": quartiles,
            "glass_within_1_of_median": float(np.mean(near_median)) if near_median else None}


def print_offsets(summaries: dict[str, dict], tolerance: int) -> None:
    print(f"  glass offsets at tolerance {tolerance} (tiles with a field; offset quartiles; glass within 1 of its median):")
    for name, summary in summaries.items():
        quartiles = " / ".join("-" if q is None else f"{q:.1f}" for q in summary["offset_quartiles"])
        near = summary["glass_within_1_of_median"]
        print(f"    {name}: {summary['with_field']:.3f} of {summary['tiles']}; {quartiles}; "
              f"{'-' if near is None else f'{near:.2f}'}")


def main(args: argparse.Namespace) -> dict:
    tissue, class_tiles = class_train_tiles(args)
    colours = frequent_colours(class_tiles, args.colours)
    train = exact_shares(class_tiles, colours, args.measure_tolerances, args.min_share)
    generated = unsnapped_tiles(args, tissue.index, tissue.key)
    clearance = (None if args.clearance_percentile is None
                 else train_clearance(class_tiles, args.clearance_percentile, args.seed))
    specs = candidate_specs(args, colours, class_tiles, generated, clearance)
    fielded = {key: apply_flat_field(generated, spec) for key, spec in specs.items()}
    shares = {key: exact_shares(tiles, colours, args.measure_tolerances, args.min_share)
              for key, tiles in fielded.items()}
    chosen, errors = choose_candidate(train, shares)
    colour_shares = [round(float(share), 5) for share in pixel_shares(class_tiles, colours)]
    print(f"{tissue.key}: colours {colours.tolist()}, each this share of train pixels: {colour_shares}")
    print(f"  exact-colour tile share at k = {args.measure_tolerances}")
    print(f"  train ({len(class_tiles)} tiles): {' '.join(f'{s:.3f}' for s in train)}")
    for key, values in shares.items():
        mark = "  <- chosen" if key == chosen else ""
        print(f"  {describe(key, args.shift)}: {' '.join(f'{s:.3f}' for s in values)}  (mean abs. difference {errors[key]:.3f}){mark}")
    spec = specs[chosen]
    print(f"  chosen: {spec}")
    record = {"command": command_line("training.fit_flat_fields", args), "generator": describe_model(args.generator),
              "class": tissue.key, "profile": args.profile, "colours": colours.tolist(), "colour_shares": colour_shares,
              "tolerance": chosen[0], "flat_field": spec, "measure_tolerances": args.measure_tolerances, "min_share": args.min_share,
              "train_tiles": len(class_tiles), "train_shares": train, "generated_tiles": args.count,
              "snapped_shares": {label(key): s for key, s in shares.items()},
              "errors": {label(key): e for key, e in errors.items()}}
    if "distance_map" in spec:
        record["distance_maps"] = {label(key): candidate["distance_map"] for key, candidate in specs.items()}
    if "shift" in spec:
        record["offset_maps"] = {label(key): candidate["shift"]["offset_map"] for key, candidate in specs.items()}
        record["offsets"] = {name: offset_summary(tiles, colours, chosen[0], args.min_share) for name, tiles in (
            ("train", class_tiles), ("generated", generated), ("shifted", fielded[chosen]))}
        print_offsets(record["offsets"], chosen[0])
    if clearance is not None:
        record["clearance"] = clearance_summary(args, spec, class_tiles, generated, fielded[chosen])
    if args.write:
        write_flat_field(args, tissue.key, spec, record)
    return record


def clearance_summary(args: argparse.Namespace, spec: dict, class_tiles: np.ndarray, generated: np.ndarray,
                      cleared: np.ndarray) -> dict:
    """The clearance and what it does at the chosen tolerance: how many generated tiles it moves, and how many lie
    nearer than it to a train tile with and without it (the train-side reading of near-copies). `cleared` is
    `generated` under `spec`."""
    clearance = spec["shift"]["clearance"]
    unclear = spec | {"shift": {key: value for key, value in spec["shift"].items() if key != "clearance"}}
    shifted = apply_flat_field(generated, unclear)
    near = {name: int((nearest_distances(tiles, class_tiles)[0] < clearance).sum())
            for name, tiles in (("shifted", shifted), ("cleared", cleared))}
    moved = int((shifted != cleared).any(axis=(1, 2, 3)).sum())
    print(f"  clearance {clearance:.4f} (percentile {args.clearance_percentile:g} of train half-to-half nearest "
          f"distances) moves {moved} of {len(generated)} tiles; within it of a train tile: {near['shifted']} shifted, "
          f"{near['cleared']} cleared")
    return {"percentile": args.clearance_percentile, "distance": clearance, "tiles_moved": moved,
            "within_clearance_of_a_train_tile": near,
            "rule": "percentile of nearest-tile L2 distances (pixels in [0, 1]) from one random half of the class's "
                    "train tiles to the other (split by --seed)"}


def label(key: tuple) -> str:
    """A candidate's key in the record: "5" for a tolerance, "7/4" for tolerance 7 blended from 4."""
    return "/".join(str(part) for part in key)


def describe(key: tuple, shift: bool = False) -> str:
    """A candidate's key as the printed table names it."""
    if len(key) == 2:
        return f"blended {key[1]}-{key[0]:2d}"
    return f"{'shifted' if shift else 'snapped'} at {key[0]:2d}"


def write_flat_field(args: argparse.Namespace, key: str, spec: dict, record: dict) -> None:
    """Sets the class's flat field in the profile and keeps every class's fit record in flat_fields.json."""
    settings = SamplingProfiles.from_config(read_generator_config(args.generator)).get(args.profile)
    write_sampling_defaults(args.generator, replace(settings, flat_fields={**settings.flat_fields, key: spec}),
                            args.profile)
    path = Path(args.generator) / RECORD_NAME
    records = json.loads(path.read_text()) if path.is_file() else {}
    records[f"{args.profile}/{key}"] = record
    path.write_text(json.dumps(records, indent=2) + "\n")
    print(f"wrote {key}'s flat field (tolerance {spec['tolerance']}) to {args.generator} ({args.profile} profile)")


if __name__ == "__main__":
    main(parse_args())
