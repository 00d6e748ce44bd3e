"""Command-line flags that several training scripts share, spelled and explained once, and what they read."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import TissueClass, add_data_arguments, load_split, resolve_class
from pathgen.generation import PROFILES
from pathgen.judge import TissueJudge


def add_class_sample_arguments(parser: argparse.ArgumentParser, *, profile_help: str, count: int, seed: int) -> None:
    """PathMNIST's location, and the generator, class, profile, number, seed and threads of one class's sample."""
    add_data_arguments(parser)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--class", "--tissue", dest="tissue", default="background",
                        help="Class key, name or index (--tissue is the same flag: the name the recorded command uses).")
    parser.add_argument("--profile", choices=PROFILES, default="bank", help=profile_help)
    parser.add_argument("--count", type=int, default=count, help="Unfiltered tiles generated.")
    parser.add_argument("--seed", type=int, default=seed, help="Seed of the generated tiles.")
    parser.add_argument("--threads", type=int, default=0, help="Torch CPU threads (0: torch's default).")


def class_train_tiles(args: argparse.Namespace) -> tuple[TissueClass, np.ndarray]:
    """Applies --threads; returns the --class and its train tiles (uint8 [n, 28, 28, 3])."""
    if args.threads:
        torch.set_num_threads(args.threads)
    tissue = resolve_class(args.tissue)
    images, labels = load_split("train", args.data_dir, download=args.download)
    return tissue, images[labels == tissue.index]


# Which train tiles are a class's coverage reference in the train-side readings; apart from --seed, which draws the
# generated tiles.
REFERENCE_SEED = 0


def reference_indices(tile_count: int, count: int) -> np.ndarray:
    """The indices of the `count` reference tiles (at most all `tile_count`) among a class's train tiles."""
    return np.random.default_rng(REFERENCE_SEED).choice(tile_count, min(count, tile_count), replace=False)


def model_features(kind: str, classifier: str, judge: str) -> Callable[[np.ndarray], np.ndarray]:
    """The features (uint8 tiles -> [N, D]) of the classifier or the judge (`kind`), loaded from its folder."""
    model = TissueJudge.from_pretrained(judge) if kind == "judge" else TissueClassifier.from_pretrained(classifier)
    return model.features
