"""Train the discriminator of discriminator guidance (pathgen.discriminator) for one generator.

    python -m training.export_synthetic --per-class 5000 --output FAKE_DIR/pathmnist.npz --profile live --workers 2
    python -m training.train_discriminator --generator GENERATOR_DIR --fake-data-dir FAKE_DIR --data-dir DATA_DIR

Real tiles come from PathMNIST train only; generated tiles from a synthetic export of the same generator (its
pathmnist.npz: validated tiles, what the bank is made of, or `--unfiltered` ones, what guidance would correct; the
discriminator learns the gap between those and real tissue). With --classes it learns those classes only, and
guidance corrects only their tiles. Both are noised to log-uniform levels in [MIN_SIGMA, MAX_SIGMA] under random flips and
rotations, and the network learns to tell them apart with the binary cross-entropy. A held-out share of both
sets scores it at fixed noise levels. The weights go to GENERATOR_DIR/discriminator/ (or --output-dir), with a
training.json beside them; the generator uses them only where a sampling profile's `discriminator_guidance`
is above 0 (set it with `tune_sampling --discriminator-guidance`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathgen.augment import random_dihedral
from pathgen.data import (
    CLASS_NAMES,
    NUM_CLASSES,
    add_data_arguments,
    class_indices,
    class_keys,
    load_split,
    per_class_indices,
)
from pathgen.discriminator import (
    FOLDER_NAME,
    MAX_SIGMA,
    MIN_SIGMA,
    DiscriminatorConfig,
    NoisyTileDiscriminator,
    vp_noise,
)
from pathgen.guided import to_model_range
from training.provenance import command_line, describe_model, file_sha256

HELD_OUT_SIGMAS = (0.01, 0.05, 0.2, 1.0, 5.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--generator", default="assets/generator", help="The generator whose tiles are the fakes.")
    parser.add_argument("--fake-data-dir", required=True,
                        help="Folder with the pathmnist.npz that export_synthetic wrote from --generator.")
    parser.add_argument("--output-dir", default=None, help=f"Where the discriminator goes (default: GENERATOR/{FOLDER_NAME}).")
    parser.add_argument("--per-class", type=int, default=5000, help="Real and generated tiles per class (at most).")
    parser.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                        help="Train on these tissue classes only (keys, e.g. background); guidance then corrects only "
                             "them. Default: every class.")
    parser.add_argument("--held-out-fraction", type=float, default=0.05, help="Share of both sets kept for scoring.")
    parser.add_argument("--steps", type=int, default=3000, help="Optimisation steps.")
    parser.add_argument("--batch-size", type=int, default=256, help="Tiles per step, half real, half generated.")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (cosine decay to 0).")
    parser.add_argument("--channels", type=int, nargs="+", default=list(DiscriminatorConfig.channels),
                        help="Channels of the three conditioned blocks (28 -> 14 -> 7 -> 4).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draws, the noise and the initialisation.")
    args = parser.parse_args(argv)
    if not 0 < args.held_out_fraction < 0.5 or args.steps < 1 or args.batch_size < 2 or args.per_class < 2:
        parser.error("--held-out-fraction must be in (0, 0.5), --steps >= 1, --batch-size >= 2, --per-class >= 2.")
    try:
        args.classes = class_keys(args.classes)
    except ValueError as error:
        parser.error(str(error))
    return args


def split_held_out(images: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple:
    """(train images, train labels, held-out images, held-out labels), a seeded shuffle cut at `fraction`."""
    order = rng.permutation(len(labels))
    cut = max(1, int(round(fraction * len(labels))))
    return images[order[cut:]], labels[order[cut:]], images[order[:cut]], labels[order[:cut]]


def load_sets(args: argparse.Namespace) -> dict:
    """Real train tiles and generated tiles, class-balanced at up to --per-class each, split into train/held-out."""
    rng = np.random.default_rng(args.seed)
    sets = {}
    for name, folder in (("real", args.data_dir), ("generated", args.fake_data_dir)):
        images, labels = load_split("train", folder, args.download if name == "real" else False)
        picks = per_class_indices(labels, args.per_class, seed=args.seed)
        picks = picks[np.isin(labels[picks], class_indices(args.classes))]
        missing = sorted(set(class_indices(args.classes)) - set(labels[picks].tolist()))
        if missing:
            raise SystemExit(f"The {name} tiles in {folder} have no tile of class {CLASS_NAMES[missing[0]]}; "
                             "export them, or leave that class out of --classes.")
        x, y, held_x, held_y = split_held_out(images[picks], labels[picks], args.held_out_fraction, rng)
        sets[name] = {"train": (to_model_range(x), torch.from_numpy(y)),
                      "held_out": (to_model_range(held_x), torch.from_numpy(held_y))}
    return sets


def sample_levels(n: int, generator: torch.Generator) -> torch.Tensor:
    """Log-uniform EDM noise levels in [MIN_SIGMA, MAX_SIGMA]."""
    u = torch.rand(n, generator=generator)
    return torch.exp(math.log(MIN_SIGMA) + u * (math.log(MAX_SIGMA) - math.log(MIN_SIGMA)))


def batch_loss(model: NoisyTileDiscriminator, sets: dict, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    half = batch_size // 2
    tiles, labels, targets = [], [], []
    for target, name in ((1.0, "real"), (0.0, "generated")):
        x, y = sets[name]["train"]
        picks = torch.randint(0, len(y), (half,), generator=generator)
        tiles.append(random_dihedral(x[picks], generator))
        labels.append(y[picks])
        targets.append(torch.full((half,), target))
    x0, y, target = torch.cat(tiles), torch.cat(labels), torch.cat(targets)
    sigma = sample_levels(len(y), generator)
    x_t = vp_noise(x0, sigma, torch.randn(x0.shape, generator=generator))
    return torch.nn.functional.binary_cross_entropy_with_logits(model(x_t, sigma, y), target)


def train_one_step(model, optimizer, scheduler, sets: dict, args: argparse.Namespace, generator) -> float:
    model.train()
    loss = batch_loss(model, sets, args.batch_size, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: NoisyTileDiscriminator, sets: dict, seed: int) -> dict:
    """Held-out accuracy (real and generated weighted equally) and mean BCE at each of HELD_OUT_SIGMAS, fixed noise."""
    model.eval()
    figures = {}
    for sigma in HELD_OUT_SIGMAS:
        generator = torch.Generator().manual_seed(seed)
        accuracy, losses = [], []
        for target, name in ((1.0, "real"), (0.0, "generated")):
            x0, y = sets[name]["held_out"]
            levels = torch.full((len(y),), sigma)
            logits = model(vp_noise(x0, levels, torch.randn(x0.shape, generator=generator)), levels, y)
            accuracy.append(float(((logits > 0).float() == target).float().mean()))
            losses.append(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))))
        figures[str(sigma)] = {"accuracy": float(np.mean(accuracy)), "bce": float(np.mean(losses))}
    return figures


def generator_identity(folder: str) -> dict:
    """The generator's hashes without its discriminator/ (which this script replaces)."""
    described = describe_model(folder)
    described["sha256"] = {name: digest for name, digest in described["sha256"].items()
                           if not name.startswith(f"{FOLDER_NAME}/")}
    return described


def record(args: argparse.Namespace, sets: dict, held_out: dict, losses: list[float], seconds: float) -> dict:
    fake_file = Path(args.fake_data_dir) / "pathmnist.npz"
    return {"command": command_line("training.train_discriminator", args), "generator": generator_identity(args.generator),
            "generated_tiles": {"file": str(fake_file), "sha256": file_sha256(fake_file)},
            "classes": args.classes or list(CLASS_NAMES),
            "tiles": {name: {part: len(sets[name][part][1]) for part in ("train", "held_out")} for name in sets},
            "steps": args.steps, "batch_size": args.batch_size, "train_wall_time_min": seconds / 60,
            "final_loss_mean_last_100": float(np.mean(losses[-100:])), "held_out": held_out,
            "threads": torch.get_num_threads()}


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    output_dir = Path(args.output_dir or Path(args.generator) / FOLDER_NAME)
    sets = load_sets(args)
    model = NoisyTileDiscriminator(DiscriminatorConfig(channels=tuple(args.channels), num_classes=NUM_CLASSES,
                                                       classes=tuple(args.classes)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    started, losses = time.time(), []
    with tqdm(range(args.steps), desc="discriminator", mininterval=10) as progress:
        for _ in progress:
            losses.append(train_one_step(model, optimizer, scheduler, sets, args, generator))
            progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", refresh=False)
    held_out = evaluate(model, sets, args.seed)
    for sigma, figures in held_out.items():
        print(f"held-out sigma {sigma:>5}: accuracy {figures['accuracy']:.3f}  BCE {figures['bce']:.4f}")
    model.save_pretrained(output_dir)
    summary = record(args, sets, held_out, losses, time.time() - started)
    (output_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {output_dir}")
    return summary


if __name__ == "__main__":
    main(parse_args())
