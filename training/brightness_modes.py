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
drawn too rarely or tiles that miss within a mode. The judge's features are for reading only, never for choosing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import add_data_arguments, load_split, resolve_class
from pathgen.generation import PROFILES, load_generator
from pathgen.judge import TissueJudge
from pathgen.metrics import NEAREST_K, knn_membership
from training.provenance import command_line, describe_model

BAND_EDGES = (0, 90, 120, 150, 180, 200, 220, 256)
REFERENCE_SEED = 0  # which train tiles are the coverage reference; apart from --seed, which draws the generated ones


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--class", "--tissue", dest="tissue", default="background",
                        help="Class key, name or index (--tissue is the same flag: the name the recorded command uses).")
    parser.add_argument("--profile", choices=PROFILES, default="bank", help="Sampling profile the tiles are drawn with.")
    parser.add_argument("--count", type=int, default=400, help="Unfiltered tiles generated.")
    parser.add_argument("--seed", type=int, default=12345, help="Seed of the generated tiles.")
    parser.add_argument("--threads", type=int, default=0, help="Torch CPU threads (0: torch's default).")
    parser.add_argument("--coverage-features", choices=("classifier", "judge"), default=None,
                        help="Also split k-NN coverage and precision against --count train tiles by band, in these "
                             "features (default: bands only).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--judge", default="assets/judge", help="Judge folder (from_pretrained).")
    parser.add_argument("--output", default=None, help="JSON file for the figures (optional).")
    args = parser.parse_args(argv)
    if args.count < 1 or (args.coverage_features and args.count < NEAREST_K + 2):
        parser.error(f"--count must be at least 1, and {NEAREST_K + 2} with --coverage-features (a k-NN ball needs k + 2 tiles).")
    return args


def band_indices(images: np.ndarray) -> np.ndarray:
    """The band of BAND_EDGES that each uint8 [N, H, W, 3] tile's mean grey level falls in."""
    means = images.reshape(len(images), -1).mean(axis=1)
    return np.digitize(means, BAND_EDGES[1:-1])


def band_fractions(images: np.ndarray) -> list[float]:
    """Fraction of uint8 [N, H, W, 3] tiles whose mean grey level falls in each band of BAND_EDGES."""
    counts = np.bincount(band_indices(images), minlength=len(BAND_EDGES) - 1)
    return (counts / max(len(images), 1)).tolist()


def share(flags: np.ndarray) -> float | None:
    """The fraction of True among `flags`; None for none at all (an empty band)."""
    return float(flags.mean()) if len(flags) else None


def coverage_by_band(reference: np.ndarray, generated: np.ndarray, features: Callable[[np.ndarray], np.ndarray]
                     ) -> dict:
    """k-NN coverage of the `reference` tiles and precision of the `generated` ones, overall and per band;
    `features` maps uint8 tiles to feature vectors."""
    covered, precise = knn_membership(features(reference), features(generated), k=NEAREST_K)
    reference_bands, generated_bands = band_indices(reference), band_indices(generated)
    per_band = [{"train_tiles": int((reference_bands == b).sum()), "coverage": share(covered[reference_bands == b]),
                 "generated_tiles": int((generated_bands == b).sum()), "precision": share(precise[generated_bands == b])}
                for b in range(len(BAND_EDGES) - 1)]
    return {"coverage": share(covered), "precision": share(precise), "per_band": per_band}


def feature_function(args: argparse.Namespace) -> Callable[[np.ndarray], np.ndarray]:
    """The features of the model --coverage-features names: uint8 tiles -> [N, D]."""
    model = (TissueJudge if args.coverage_features == "judge" else TissueClassifier).from_pretrained(
        getattr(args, args.coverage_features))
    return model.features


def shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_coverage(bands: list[str], figures: dict, space: str) -> None:
    print(f"k-NN in {space} features against train: coverage {figures['coverage']:.3f}, precision "
          f"{figures['precision']:.3f}\n      band  train tiles  covered | generated  precise")
    for band, row in zip(bands, figures["per_band"], strict=True):
        print(f"  {band:>8}  {row['train_tiles']:11d}  {shown(row['coverage']):>7} | {row['generated_tiles']:9d}  "
              f"{shown(row['precision']):>7}")


def total_variation(first: list[float], second: list[float]) -> float:
    return 0.5 * float(np.abs(np.array(first) - np.array(second)).sum())


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    tissue = resolve_class(args.tissue)
    images, labels = load_split("train", args.data_dir, download=args.download)
    class_tiles = images[labels == tissue.index]
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
    if args.coverage_features:
        pick = np.random.default_rng(REFERENCE_SEED).choice(len(class_tiles), min(args.count, len(class_tiles)),
                                                             replace=False)
        result["coverage_by_band"] = {"features": args.coverage_features, "k": NEAREST_K, "reference_seed": REFERENCE_SEED,
                                      **coverage_by_band(class_tiles[pick], tiles, feature_function(args))}
        print_coverage(bands, result["coverage_by_band"], args.coverage_features)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
