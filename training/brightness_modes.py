"""How a generator divides one class's tiles between brightness bands, against the train tiles of that class.

    python -m training.brightness_modes --data-dir ../shared/data --generator assets/generator --class background

Background has two modes, dark purple (mean grey level 90-120) and bright (200 and above), and little between.
A generator that has not learned the noisiest levels well, where a tile's overall layout and brightness are
decided, fills the gap between them and draws one mode too rarely; k-NN coverage then falls without saying why.
This prints the fraction of `--count` unfiltered tiles (the `--profile` settings, noise from `--seed`) in each
band beside the train tiles' fractions and the total variation distance between the two (0: the same bands,
1: no overlap), and writes them to `--output` with provenance. It compares against train only, so it can
choose between generators without touching the val tiles `evaluate_generator` reports against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pathgen.data import add_data_arguments, load_split, resolve_class
from pathgen.generation import PROFILES, load_generator
from training.provenance import command_line, describe_model

BAND_EDGES = (0, 90, 120, 150, 180, 200, 220, 256)


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
    parser.add_argument("--output", default=None, help="JSON file for the figures (optional).")
    return parser.parse_args(argv)


def band_fractions(images: np.ndarray) -> list[float]:
    """Fraction of uint8 [N, H, W, 3] tiles whose mean grey level falls in each band of BAND_EDGES."""
    means = images.reshape(len(images), -1).mean(axis=1)
    counts, _ = np.histogram(means, bins=BAND_EDGES)
    return (counts / max(len(images), 1)).tolist()


def total_variation(first: list[float], second: list[float]) -> float:
    return 0.5 * float(np.abs(np.array(first) - np.array(second)).sum())


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    tissue = resolve_class(args.tissue)
    images, labels = load_split("train", args.data_dir, download=args.download)
    train = band_fractions(images[labels == tissue.index])
    generated = band_fractions(load_generator(args.generator).generate(tissue.index, args.count, seed=args.seed,
                                                                      profile=args.profile))
    bands = [f"{low}-{high - 1}" for low, high in zip(BAND_EDGES, BAND_EDGES[1:], strict=False)]
    print(f"{tissue.key}, mean grey level band: train / generated ({args.generator}, profile {args.profile})")
    for band, real, ours in zip(bands, train, generated, strict=True):
        print(f"  {band:>8}  {real:.3f} / {ours:.3f}")
    distance = total_variation(train, generated)
    print(f"total variation distance {distance:.3f}")
    result = {"command": command_line("training.brightness_modes", args), "generator": describe_model(args.generator),
              "class": tissue.key, "bands": bands, "train": train, "generated": generated,
              "total_variation": distance}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
