"""How closely k-NN coverage asks one class's tiles to match real tissue's colour, read on train tiles only.

    python -m training.colour_sensitivity --data-dir ../shared/data --generator assets/generator --class background \
        --features judge

k-NN coverage counts a real tile as covered when a generated tile lies inside the ball that reaches its k-th
nearest real neighbour. Smooth tiles (blank glass, thin stain) often have near-identical real neighbours, so their
balls are small, and how small says how exact a generated tile's colour must be to enter one. Two readings, both against the
same `--count` reference train tiles `training.brightness_modes` uses (k = 5, as `evaluate_generator` counts):

1. **A second real set moved.** `--count` other train tiles of the class, every pixel moved by d grey levels in
   every channel, for each d in `--shifts`: coverage and precision overall, and coverage of the smooth reference
   tiles (texture energy below SMOOTH_TEXTURE). d = 0 is real against real; the fall with d is what a colour offset
   no eye sees costs.
2. **The generator's tiles at train tiles' mean colours.** `--count` unfiltered tiles (the `--profile` settings,
   noise from `--seed`) as drawn, and each moved as a whole so that its mean colour becomes the nearest mean colour
   among the class's remaining train tiles (neither the reference nor the second set), where that is at most
   `--max-move` grey levels away in every channel. The difference between the two says how much of the class's
   missing coverage is colour placement alone. This is a diagnostic, never a sampling step: it copies train tiles'
   mean colours onto generated ones.

The features are the classifier's or the judge's (`--features`); the judge's are for reading only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from pathgen.flat_fields import moved_tiles
from pathgen.generation import load_generator
from pathgen.metrics import NEAREST_K, knn_membership, texture_energy
from training.cli import REFERENCE_SEED, add_class_sample_arguments, class_train_tiles, model_features, reference_indices
from training.provenance import command_line, describe_model

SECOND_SET_SEED = 1  # the second real set, drawn from the train tiles the reference leaves
# Texture energy below 4 grey-level steps: the flat and low bands of training.brightness_modes' TEXTURE_EDGES.
SMOOTH_TEXTURE = 4.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_class_sample_arguments(parser, profile_help="Sampling profile the generated tiles are drawn with.",
                               count=400, seed=12345)
    parser.add_argument("--features", choices=("classifier", "judge"), default="judge",
                        help="Feature space coverage and precision are read in.")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--judge", default="assets/judge", help="Judge folder (from_pretrained).")
    parser.add_argument("--shifts", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="Grey levels (every channel) the second real set is moved by, one reading each (0-255).")
    parser.add_argument("--max-move", type=float, default=4.0,
                        help="Largest move (grey levels, every channel) that puts a generated tile at a train mean colour.")
    parser.add_argument("--output", default=None, help="JSON file for the figures (optional).")
    args = parser.parse_args(argv)
    if args.count < NEAREST_K + 2:
        parser.error(f"--count must be at least {NEAREST_K + 2} (a k-NN ball needs k + 2 tiles).")
    if not all(0 <= shift <= 255 for shift in args.shifts) or not 0 <= args.max_move <= 255:
        parser.error("--shifts and --max-move must lie from 0 to 255.")
    return args


def real_sets(class_tiles: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference, second set, the rest): `count` tiles each, disjoint, and every other tile of the class."""
    if len(class_tiles) < 2 * count + 1:
        raise ValueError(f"{len(class_tiles)} train tiles of the class cannot give two sets of {count} and a rest.")
    reference = reference_indices(len(class_tiles), count)
    left = np.setdiff1d(np.arange(len(class_tiles)), reference)
    second = np.random.default_rng(SECOND_SET_SEED).choice(left, count, replace=False)
    rest = np.setdiff1d(left, second)
    return class_tiles[reference], class_tiles[second], class_tiles[rest]


def mean_colours(tiles: np.ndarray) -> np.ndarray:
    """float [n, 3]: each tile's mean RGB."""
    return tiles.reshape(len(tiles), -1, 3).astype(np.float64).mean(axis=1)


def at_nearest_means(tiles: np.ndarray, means: np.ndarray, max_move: float) -> tuple[np.ndarray, np.ndarray]:
    """(`tiles` each moved so its mean colour is the nearest of `means` [m, 3], where that move is at most `max_move`
    in every channel, else left; float [n]: each tile's move size, its largest channel, 0 for tiles left)."""
    own = mean_colours(tiles)
    _, nearest = cKDTree(means).query(own)
    moves = means[nearest] - own
    sizes = np.abs(moves).max(axis=1)
    moves[sizes > max_move] = 0.0
    return moved_tiles(tiles, moves), np.where(sizes > max_move, 0.0, sizes)


def coverage_figures(reference_features: np.ndarray, features: np.ndarray, smooth: np.ndarray) -> dict:
    """k-NN coverage of the reference and precision of the other set, and coverage of the `smooth` reference tiles."""
    covered, precise = knn_membership(reference_features, features, k=NEAREST_K)
    return {"coverage": float(covered.mean()), "precision": float(precise.mean()),
            "smooth_coverage": float(covered[smooth].mean()) if smooth.any() else None}


def shifted_real_readings(features: Callable[[np.ndarray], np.ndarray], reference_features: np.ndarray,
                          second: np.ndarray, smooth: np.ndarray, shifts: list[int]) -> list[dict]:
    """Reading 1: the second real set moved by each of `shifts` grey levels."""
    readings = []
    for shift in shifts:
        moved = moved_tiles(second, np.full((len(second), 3), float(shift)))
        readings.append({"shift": shift, **coverage_figures(reference_features, features(moved), smooth)})
    return readings


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_readings(result: dict) -> None:
    print(f"{result['class']}, {result['features']} features, k = {NEAREST_K}, against {result['count']} train tiles "
          f"({result['smooth_reference_tiles']} smooth): coverage / precision / smooth coverage")
    for row in result["real_shifted"]:
        print(f"  second real set moved {row['shift']:>3} grey levels: {shown(row['coverage'])} / "
              f"{shown(row['precision'])} / {shown(row['smooth_coverage'])}")
    for name, label in (("generated", "generated, as drawn"), ("generated_at_train_means", "generated, at train means")):
        row = result[name]
        print(f"  {label:>36}: {shown(row['coverage'])} / {shown(row['precision'])} / {shown(row['smooth_coverage'])}")
    moves = result["generated_at_train_means"]
    print(f"  tiles moved {moves['tiles_moved']} of {result['count']}; move size quartiles (grey levels, largest "
          f"channel) {' / '.join(f'{q:.2f}' for q in moves['move_quartiles'])}")


def main(args: argparse.Namespace) -> dict:
    tissue, class_tiles = class_train_tiles(args)
    reference, second, rest = real_sets(class_tiles, args.count)
    features = model_features(args.features, args.classifier, args.judge)
    reference_features = features(reference)
    smooth = texture_energy(reference) < SMOOTH_TEXTURE
    tiles = load_generator(args.generator).generate(tissue.index, args.count, seed=args.seed, profile=args.profile)
    placed, sizes = at_nearest_means(tiles, mean_colours(rest), args.max_move)
    result = {"command": command_line("training.colour_sensitivity", args), "generator": describe_model(args.generator),
              "class": tissue.key, "features": args.features, "k": NEAREST_K, "count": args.count,
              "reference_seed": REFERENCE_SEED, "second_set_seed": SECOND_SET_SEED, "smooth_texture": SMOOTH_TEXTURE,
              "smooth_reference_tiles": int(smooth.sum()), "train_means": len(rest),
              "real_shifted": shifted_real_readings(features, reference_features, second, smooth, args.shifts),
              "generated": coverage_figures(reference_features, features(tiles), smooth),
              "generated_at_train_means": {**coverage_figures(reference_features, features(placed), smooth),
                                           "max_move": args.max_move, "tiles_moved": int((sizes > 0).sum()),
                                           "move_quartiles": [float(q) for q in np.percentile(sizes, [25, 50, 75])]}}
    print_readings(result)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
