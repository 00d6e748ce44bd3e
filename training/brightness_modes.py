"""How a generator divides one class's tiles between brightness bands, against the train tiles of that class.

    python -m training.brightness_modes --data-dir ../shared/data --generator assets/generator --class background

Background has two modes, dark purple (mean grey level 90-120) and bright (200 and above), and little between.
A generator that has not learned the noisiest levels well, where a tile's overall layout and brightness are
decided, fills the gap between them and draws one mode too rarely; k-NN coverage then falls without saying why.
This prints the fraction of `--count` unfiltered tiles (the `--profile` settings, noise from `--seed`) in each
band beside the train tiles' fractions and the total variation distance between the two (0: the same bands,
1: no overlap), and writes them to `--output` with provenance. It compares against train only, so it can
choose between generators without touching the val tiles `evaluate_generator` reports against.

With `--coverage-features classifier` (or `judge`) it also splits k-NN coverage and precision (k = 5, as
`evaluate_generator` counts them) by band: `--count` train tiles of the class are the reference; a band's
coverage is the share of its train tiles with a generated tile inside their k-NN ball, its precision the share
of its generated tiles inside some train tile's ball. That says whether a class's missing coverage is a mode
drawn too rarely or tiles that miss within a mode. The same split by texture (TEXTURE_EDGES, in
`pathgen.metrics.texture_energy`'s grey-level steps) says whether the tiles missed are the flat, the typical or
the rough ones. The judge's features are for reading only, never for choosing.

Exact colours: a scan renders flat fields of blank glass as one RGB value, so a few values are far more frequent
among real pixels than any other (in background, (237, 221, 236) is 5% of all train pixels). A tile is an
*exact-colour tile* when at least --exact-min-share of its pixels lie within --exact-tolerance grey levels (every
channel) of one of the --exact-colours most frequent values among the class's train pixels. This prints the share
of such tiles among the train reference and the generated tiles, and with --coverage-features splits coverage and
precision into exact-colour tiles and the rest: a set of identical tiles has k-NN balls of almost no radius, which
only a tile of that very colour enters.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pathgen.flat_fields import EXACT_COLOURS, EXACT_MIN_SHARE, EXACT_TOLERANCE, exact_colour_tiles, frequent_colours
from pathgen.generation import load_generator
from pathgen.metrics import NEAREST_K, knn_membership, texture_energy
from training.cli import REFERENCE_SEED, add_class_sample_arguments, class_train_tiles, model_features, reference_indices
from training.provenance import command_line, describe_model

BAND_EDGES = (0, 90, 120, 150, 180, 200, 220, 256)
# Texture bands, in pathgen.metrics.texture_energy's grey-level steps: real background's p10 / median / p90 are
# about 0.8 / 3.5 / 11.4, so the bands separate flat, typical and rough tiles.
TEXTURE_EDGES = (0.0, 2.0, 4.0, 8.0, 256.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_class_sample_arguments(parser, profile_help="Sampling profile the tiles are drawn with.", count=400, seed=12345)
    parser.add_argument("--coverage-features", choices=("classifier", "judge"), default=None,
                        help="Also split k-NN coverage and precision against --count train tiles by band, in these "
                             "features (default: bands only).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--judge", default="assets/judge", help="Judge folder (from_pretrained).")
    parser.add_argument("--exact-colours", type=int, default=EXACT_COLOURS,
                        help="How many of the most frequent train pixel values count as the class's exact colours (0: skip).")
    parser.add_argument("--exact-tolerance", type=int, default=EXACT_TOLERANCE,
                        help="Grey levels (every channel) within which a pixel counts as an exact colour.")
    parser.add_argument("--exact-min-share", type=float, default=EXACT_MIN_SHARE,
                        help="Share of a tile's pixels that must be exact colours for an exact-colour tile.")
    parser.add_argument("--output", default=None, help="JSON file for the figures (optional).")
    args = parser.parse_args(argv)
    if args.exact_colours < 0 or not 0 <= args.exact_tolerance <= 255 or not 0 < args.exact_min_share <= 1:
        parser.error("--exact-colours must be at least 0, --exact-tolerance from 0 to 255, --exact-min-share in (0, 1].")
    if args.count < 1 or (args.coverage_features and args.count < NEAREST_K + 2):
        parser.error(f"--count must be at least 1, and {NEAREST_K + 2} with --coverage-features (a k-NN ball needs k + 2 tiles).")
    return args


def band_indices(images: np.ndarray) -> np.ndarray:
    """The band of BAND_EDGES that each uint8 [N, H, W, 3] tile's mean grey level falls in."""
    means = images.reshape(len(images), -1).mean(axis=1)
    return np.digitize(means, BAND_EDGES[1:-1])


def texture_band_indices(images: np.ndarray) -> np.ndarray:
    """The band of TEXTURE_EDGES that each uint8 [N, H, W, 3] tile's texture energy falls in."""
    return np.digitize(texture_energy(images), TEXTURE_EDGES[1:-1])


def band_fractions(images: np.ndarray) -> list[float]:
    """Fraction of uint8 [N, H, W, 3] tiles whose mean grey level falls in each band of BAND_EDGES."""
    counts = np.bincount(band_indices(images), minlength=len(BAND_EDGES) - 1)
    return (counts / max(len(images), 1)).tolist()


def share(flags: np.ndarray) -> float | None:
    """The fraction of True among `flags`; None for none at all (an empty band)."""
    return float(flags.mean()) if len(flags) else None


def split_by_group(covered: np.ndarray, precise: np.ndarray, reference_groups: np.ndarray,
                   generated_groups: np.ndarray, groups: int) -> list[dict]:
    """Coverage of the reference tiles and precision of the generated ones within each group 0..groups-1."""
    return [{"train_tiles": int((reference_groups == g).sum()), "coverage": share(covered[reference_groups == g]),
             "generated_tiles": int((generated_groups == g).sum()), "precision": share(precise[generated_groups == g])}
            for g in range(groups)]


def coverage_by_band(reference: np.ndarray, generated: np.ndarray, features: Callable[[np.ndarray], np.ndarray],
                     exact: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """k-NN coverage of the `reference` tiles and precision of the `generated` ones, overall and per band, and
    per texture band, and with `exact` (the exact-colour flags of both) for exact-colour tiles and the rest;
    `features` maps uint8 tiles to feature vectors."""
    covered, precise = knn_membership(features(reference), features(generated), k=NEAREST_K)
    figures = {"coverage": share(covered), "precision": share(precise),
               "per_band": split_by_group(covered, precise, band_indices(reference), band_indices(generated),
                                          len(BAND_EDGES) - 1),
               "texture_bands": [f"{low:g}-{high:g}" for low, high in itertools.pairwise(TEXTURE_EDGES)],
               "per_texture_band": split_by_group(covered, precise, texture_band_indices(reference),
                                                  texture_band_indices(generated), len(TEXTURE_EDGES) - 1)}
    if exact is not None:
        other, exact_colour = split_by_group(covered, precise, *(flags.astype(int) for flags in exact), 2)
        figures["exact_colour_tiles"], figures["other_tiles"] = exact_colour, other
    return figures


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_coverage(bands: list[str], figures: dict, space: str) -> None:
    print(f"k-NN in {space} features against train: coverage {figures['coverage']:.3f}, precision "
          f"{figures['precision']:.3f}\n      band  train tiles  covered | generated  precise")
    rows = list(zip(bands, figures["per_band"], strict=True))
    rows += [(f"step {band}", row) for band, row in zip(figures["texture_bands"], figures["per_texture_band"],
                                                        strict=True)]
    rows += [(name, figures[key]) for name, key in (("exact", "exact_colour_tiles"), ("other", "other_tiles"))
             if key in figures]
    for band, row in rows:
        print(f"  {band:>8}  {row['train_tiles']:11d}  {shown(row['coverage']):>7} | {row['generated_tiles']:9d}  "
              f"{shown(row['precision']):>7}")


def exact_colour_figures(args: argparse.Namespace, class_tiles: np.ndarray, reference: np.ndarray,
                         generated: np.ndarray) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """The class's exact colours (from all its train tiles), the share of exact-colour tiles among the train
    reference and the generated tiles, and both sets' flags."""
    colours = frequent_colours(class_tiles, args.exact_colours)
    flags = tuple(exact_colour_tiles(tiles, colours, args.exact_tolerance, args.exact_min_share)
                  for tiles in (reference, generated))
    figures = {"colours": colours.tolist(), "tolerance": args.exact_tolerance, "min_share": args.exact_min_share,
               "train_share": float(flags[0].mean()), "generated_share": float(flags[1].mean())}
    print(f"exact-colour tiles ({', '.join(map(str, figures['colours']))}; >= {args.exact_min_share:g} of pixels "
          f"within {args.exact_tolerance}): train {figures['train_share']:.3f} / generated {figures['generated_share']:.3f}")
    return figures, flags


def total_variation(first: list[float], second: list[float]) -> float:
    return 0.5 * float(np.abs(np.array(first) - np.array(second)).sum())


def main(args: argparse.Namespace) -> dict:
    tissue, class_tiles = class_train_tiles(args)
    tiles = load_generator(args.generator).generate(tissue.index, args.count, seed=args.seed, profile=args.profile)
    train, generated = band_fractions(class_tiles), band_fractions(tiles)
    bands = [f"{low}-{high - 1}" for low, high in zip(BAND_EDGES, BAND_EDGES[1:], strict=False)]
    print(f"{tissue.key}, mean grey level band: train / generated ({args.generator}, profile {args.profile})")
    for band, real, ours in zip(bands, train, generated, strict=True):
        print(f"  {band:>8}  {real:.3f} / {ours:.3f}")
    distance = total_variation(train, generated)
    print(f"total variation distance {distance:.3f}")
    result = {"command": command_line("training.brightness_modes", args), "generator": describe_model(args.generator),
              "class": tissue.key, "bands": bands, "train": train, "generated": generated,
              "total_variation": distance}
    pick = reference_indices(len(class_tiles), args.count)
    flags = None
    if args.exact_colours:
        result["exact_colours"], flags = exact_colour_figures(args, class_tiles, class_tiles[pick], tiles)
    if args.coverage_features:
        features = model_features(args.coverage_features, args.classifier, args.judge)
        result["coverage_by_band"] = {"features": args.coverage_features, "k": NEAREST_K, "reference_seed": REFERENCE_SEED,
                                      **coverage_by_band(class_tiles[pick], tiles, features, flags)}
        print_coverage(bands, result["coverage_by_band"], args.coverage_features)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
