"""Train the independent judge (a small ConvNeXt, pathgen.judge) on PathMNIST train; select on val.

    python -m training.train_judge --data-dir ../shared/data --threads 1

Another architecture and seed than the classifier that filters the bank, so realism figures can be read
in features the filter never shaped. The judge only reports: nothing may filter, tune or select with it.
Checkpoints (one per epoch) go outside the work tree so that a fresh clone keeps them; test accuracy is
measured once at the end and only recorded.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathgen.data import add_data_arguments, load_split, resolve_data_dir
from pathgen.judge import JudgeConfig, TissueJudge
from training.provenance import command_line, describe_model, file_sha256
from training.train_classifier import augment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output-dir", default="assets/judge", help="Where save_pretrained writes the judge.")
    parser.add_argument("--checkpoint-dir", default=str(Path("~/.cache/pathgen/runs/judge").expanduser()),
                        help="Where the resumable per-epoch checkpoint goes (outside the work tree).")
    parser.add_argument("--epochs", type=int, default=10, help="Passes over the training split.")
    parser.add_argument("--batch-size", type=int, default=128, help="Training batch size.")
    parser.add_argument("--lr", type=float, default=2e-3, help="Peak AdamW learning rate (warm-up, then cosine decay).")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay.")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="Cross-entropy label smoothing.")
    parser.add_argument("--stain-strength", type=float, default=0.05, help="Half-width of the H&E stain jitter (0 disables).")
    parser.add_argument("--dims", type=int, nargs=4, default=JudgeConfig().dims, help="ConvNeXt stage widths.")
    parser.add_argument("--depths", type=int, nargs=4, default=JudgeConfig().depths, help="ConvNeXt blocks per stage.")
    parser.add_argument("--kernel-size", type=int, default=JudgeConfig().kernel_size, help="Depthwise kernel size.")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="Stop at the first epoch end (after at least one) past this much training time (resumed time included) and "
                             "export the best epoch so far; for a CPU shared with other jobs. Default: no limit.")
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N train images (tests).")
    parser.add_argument("--val-limit", type=int, default=None, help="Use only the first N val and test images (tests).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--seed", type=int, default=1, help="Seed (the classifier's is 0).")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="Continue from the checkpoint in --checkpoint-dir if there is one.")
    return parser.parse_args(argv)


def train_one_epoch(model, optimizer, scheduler, train_x, train_y, args, epoch, generator) -> float:
    model.train()
    order = torch.randperm(len(train_x), generator=generator)
    starts = range(0, max(1, len(order) - args.batch_size + 1), args.batch_size)
    total, progress = 0.0, tqdm(starts, desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=30)
    for start in progress:
        index = order[start : start + args.batch_size]
        images = augment(train_x[index], args.stain_strength, generator).contiguous()
        loss = torch.nn.functional.cross_entropy(model(images), train_y[index], label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item()
    return total / len(starts)


def warmup_cosine(step: int, steps: int) -> float:
    """Learning-rate factor: linear warm-up over the first 5% of steps, then cosine decay to zero."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def accuracy(model: TissueJudge, images: np.ndarray, labels: np.ndarray) -> float:
    return float((model.predict_proba(images).argmax(axis=1) == labels).mean())


def resume(checkpoint_file: Path, args, model, optimizer, scheduler, generator) -> tuple[int, list, dict, float]:
    """Start epoch, history, best-so-far and elapsed seconds; a fresh start when there is no checkpoint."""
    if not (args.resume and checkpoint_file.is_file()):
        return 0, [], {"val_accuracy": -1.0, "epoch": -1, "state": None}, 0.0
    checkpoint = torch.load(checkpoint_file, weights_only=False)
    for name in ("epochs", "batch_size", "train_limit", "dims", "depths", "kernel_size"):
        if checkpoint["args"][name] != getattr(args, name):
            raise SystemExit(f"{checkpoint_file} belongs to a run with --{name.replace('_', '-')} "
                             f"{checkpoint['args'][name]}; rerun with that value, or pass --no-resume.")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    generator.set_state(checkpoint["generator"])
    print(f"resumed after epoch {checkpoint['epoch'] + 1}", flush=True)
    return checkpoint["epoch"] + 1, checkpoint["history"], checkpoint["best"], checkpoint["elapsed_s"]


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    command = command_line("training.train_judge", args)
    checkpoint_dir = Path(args.checkpoint_dir).expanduser()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = load_split("train", args.data_dir, args.download)
    val_images, val_labels = load_split("val", args.data_dir, args.download)
    train_x = torch.from_numpy(train_images[: args.train_limit]).permute(0, 3, 1, 2).contiguous()
    train_y = torch.from_numpy(train_labels[: args.train_limit])
    val_images, val_labels = val_images[: args.val_limit], val_labels[: args.val_limit]
    print(f"train {len(train_x)} images, val {len(val_images)} images", flush=True)

    model = TissueJudge(JudgeConfig(dims=list(args.dims), depths=list(args.depths), kernel_size=args.kernel_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * max(1, len(train_x) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, steps=steps))
    generator = torch.Generator().manual_seed(args.seed)
    checkpoint_file = checkpoint_dir / "checkpoint.pt"
    start_epoch, history, best, elapsed = resume(checkpoint_file, args, model, optimizer, scheduler, generator)
    started = time.time() - elapsed

    for epoch in range(start_epoch, args.epochs):
        if history and args.max_minutes is not None and time.time() - started > 60 * args.max_minutes:
            print(f"stopping before epoch {epoch + 1}: past --max-minutes {args.max_minutes}", flush=True)
            break
        loss = train_one_epoch(model, optimizer, scheduler, train_x, train_y, args, epoch, generator)
        val_accuracy = accuracy(model, val_images, val_labels)
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_accuracy": val_accuracy,
                        "elapsed_s": time.time() - started})
        print(json.dumps(history[-1]), flush=True)
        if val_accuracy > best["val_accuracy"]:
            best = {"val_accuracy": val_accuracy, "epoch": epoch + 1, "state": copy.deepcopy(model.state_dict())}
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "epoch": epoch,
                    "history": history, "best": best, "elapsed_s": time.time() - started, "args": vars(args)},
                   checkpoint_file)

    model.load_state_dict(best["state"])
    model.save_pretrained(args.output_dir)
    return write_summary(model, args, command, history, best, started)


def write_summary(model: TissueJudge, args: argparse.Namespace, command: str, history: list, best: dict,
                  started: float) -> dict:
    test_images, test_labels = load_split("test", args.data_dir, args.download)
    data_file = resolve_data_dir(args.data_dir) / "pathmnist.npz"
    summary = {
        "role": "independent judge for realism figures only; never used to filter, tune or select",
        "architecture": "timm ConvNeXt (1x1 stem, stages at 28/14/7/3 px), trained from scratch",
        "parameters": sum(p.numel() for p in model.network.parameters()),
        "selected_epoch": best["epoch"], "epochs_trained": len(history), "epochs_planned": args.epochs,
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": accuracy(model, test_images[: args.val_limit], test_labels[: args.val_limit]),
        "train_wall_time_min": (time.time() - started) / 60, "threads": torch.get_num_threads(),
        "command": command, "data_sha256": file_sha256(data_file) if data_file.is_file() else None,
        "model": describe_model(args.output_dir), "history": history,
    }
    Path(args.output_dir, "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k not in ("history", "model")}, indent=2), flush=True)
    return summary


if __name__ == "__main__":
    main(parse_args())
