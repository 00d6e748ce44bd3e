"""Train the ResNet-18 tissue classifier on PathMNIST train, select on val, calibrate on val.

    python -m training.train_classifier --data-dir ../shared/data --output-dir assets/classifier

The test split is never read here: `python -m training.evaluate_classifier` reports it once.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathgen.classifier import ClassifierConfig, TissueClassifier
from pathgen.cpu import has_fast_bf16
from pathgen.data import add_data_arguments, load_split
from pathgen.metrics import expected_calibration_error, fit_temperature
from training.classifier_recipe import augment, optimization_step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output-dir", default="assets/classifier", help="Where save_pretrained writes the final calibrated model.")
    parser.add_argument("--checkpoint-dir", default="runs/classifier", help="Where resumable per-epoch checkpoints and the log go.")
    parser.add_argument("--epochs", type=int, default=10, help="Passes over the training split.")
    parser.add_argument("--batch-size", type=int, default=256, help="Training batch size.")
    parser.add_argument("--lr", type=float, default=0.1, help="Peak SGD learning rate (one-cycle schedule).")
    parser.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay.")
    parser.add_argument("--label-smoothing", type=float, default=0.05, help="Cross-entropy label smoothing.")
    parser.add_argument("--stain-strength", type=float, default=0.05, help="Half-width of the H&E stain jitter (0 disables).")
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N training images (quick trials and tests).")
    parser.add_argument("--val-limit", type=int, default=None, help="Use only the first N validation images (quick trials and tests).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=has_fast_bf16(),
                        help="bfloat16 autocast on CPU (default: on only where the CPU has native bf16).")
    parser.add_argument("--dihedral-tta", choices=("auto", "on", "off"), default="auto",
                        help="Average predictions over the eight flips/rotations; auto keeps it where it raises val accuracy.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed for initialisation, shuffling and augmentation.")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="Continue from the last checkpoint in --checkpoint-dir if there is one.")
    return parser.parse_args(argv)


def load_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]:
    train_images, train_labels = load_split("train", args.data_dir, args.download)
    val_images, val_labels = load_split("val", args.data_dir, args.download)
    train_images, train_labels = train_images[: args.train_limit], train_labels[: args.train_limit]
    val_images, val_labels = val_images[: args.val_limit], val_labels[: args.val_limit]
    train_x = torch.from_numpy(train_images).permute(0, 3, 1, 2).contiguous()
    return train_x, torch.from_numpy(train_labels), val_images, val_labels


def train_one_epoch(model, optimizer, scheduler, train_x, train_y, args, epoch, generator) -> float:
    model.train()
    order = torch.randperm(len(train_x), generator=generator)
    batches = range(0, len(order) - args.batch_size + 1, args.batch_size) if len(order) >= args.batch_size else [0]
    total, progress = 0.0, tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=10)
    for start in progress:
        index = order[start : start + args.batch_size]
        images = augment(train_x[index], args.stain_strength, generator)
        loss = optimization_step(model, optimizer, scheduler, images, train_y[index], args.label_smoothing, args.bf16)
        total += loss.item()
        progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return total / len(batches)


def evaluate(model: TissueClassifier, images: np.ndarray, labels: np.ndarray) -> dict:
    return score_logits(model.predict_logits(images), labels)


def score_logits(logits: np.ndarray, labels: np.ndarray) -> dict:
    probabilities = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return {
        "accuracy": float((probabilities.argmax(1) == labels).mean()),
        "ece": expected_calibration_error(probabilities, labels),
        "logits": logits,
    }


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    checkpoint_dir = Path(args.checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train_x, train_y, val_images, val_labels = load_data(args)
    print(f"train {len(train_x)} images, val {len(val_images)} images", flush=True)

    model = TissueClassifier(ClassifierConfig()).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    steps_per_epoch = max(1, len(train_x) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15)
    generator = torch.Generator().manual_seed(args.seed)
    start_epoch, history, best = 0, [], {"val_accuracy": -1.0, "epoch": -1, "state": None}
    started = time.time()

    checkpoint_file = checkpoint_dir / "checkpoint.pt"
    if args.resume and checkpoint_file.is_file():
        checkpoint = torch.load(checkpoint_file, weights_only=False)
        for name in ("epochs", "batch_size", "train_limit"):  # they fix the length of the learning-rate schedule
            if checkpoint["args"][name] != getattr(args, name):
                raise SystemExit(f"{checkpoint_file} belongs to a run with --{name.replace('_', '-')} "
                                 f"{checkpoint['args'][name]}; rerun with that value, or pass --no-resume (or another "
                                 "--checkpoint-dir) to start a new run.")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        generator.set_state(checkpoint["generator"])
        start_epoch, history, best = checkpoint["epoch"] + 1, checkpoint["history"], checkpoint["best"]
        started -= checkpoint["elapsed_s"]
        print(f"resumed after epoch {start_epoch}", flush=True)

    for epoch in range(start_epoch, args.epochs):
        loss = train_one_epoch(model, optimizer, scheduler, train_x, train_y, args, epoch, generator)
        result = evaluate(model, val_images, val_labels)
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_accuracy": result["accuracy"], "elapsed_s": time.time() - started})
        print(json.dumps(history[-1]), flush=True)
        if result["accuracy"] > best["val_accuracy"]:
            # A real copy: later epochs must not overwrite the chosen weights.
            best = {"val_accuracy": result["accuracy"], "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict())}
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(), "epoch": epoch, "history": history, "best": best,
                    "elapsed_s": time.time() - started, "args": vars(args)}, checkpoint_file)

    model.load_state_dict(best["state"])
    model.config.dihedral_tta = args.dihedral_tta == "on"
    uncalibrated = evaluate(model, val_images, val_labels)
    if args.dihedral_tta == "auto":
        model.config.dihedral_tta = True
        with_tta = evaluate(model, val_images, val_labels)
        print(f"val accuracy {uncalibrated['accuracy']:.4f} single view, {with_tta['accuracy']:.4f} with dihedral TTA", flush=True)
        model.config.dihedral_tta = with_tta["accuracy"] > uncalibrated["accuracy"]
        uncalibrated = with_tta if model.config.dihedral_tta else uncalibrated
    model.config.temperature = fit_temperature(uncalibrated["logits"], val_labels)
    # Calibration only rescales the logits, so the network need not run over val again.
    calibrated = score_logits((uncalibrated["logits"] / model.config.temperature).astype(np.float32), val_labels)
    model.save_pretrained(args.output_dir)
    summary = {"selected_epoch": best["epoch"], "val_accuracy": calibrated["accuracy"], "temperature": model.config.temperature,
               "dihedral_tta": model.config.dihedral_tta,
               "val_ece_before_scaling": uncalibrated["ece"], "val_ece_after_scaling": calibrated["ece"],
               "train_wall_time_min": (time.time() - started) / 60, "threads": torch.get_num_threads(), "history": history,
               "args": vars(args)}
    Path(args.output_dir, "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("history", "args")}, indent=2), flush=True)


if __name__ == "__main__":
    main(parse_args())
