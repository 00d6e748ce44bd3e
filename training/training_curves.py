"""Compare generator training runs on the held-out figure at equal CPU time, from their `log.jsonl` files.

    python -m training.training_curves ~/.cache/pathgen/runs/pilot-a ~/.cache/pathgen/runs/pilot-b \\
        --at-minutes 30 60 80 --plot docs/figures/pilots.png

For each run and each minute asked, the table shows the last save at or before that minute of training
(`train_min` in the log) and its best EMA snapshot's held-out x0-MSE, plain and geometric mean over the
noise levels. Runs that trained side by side on the same machine compare fairly; the plot shows the
whole curves against minutes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="Checkpoint folders of train_generator runs (each holds log.jsonl).")
    parser.add_argument("--at-minutes", type=float, nargs="+", default=None,
                        help="Training minutes to compare the runs at (default: every save of each run).")
    parser.add_argument("--batch-size", type=int, default=64, help="Images per step, to count images seen.")
    parser.add_argument("--plot", default=None, help="Also draw geometric mean against minutes to this PNG.")
    parser.add_argument("--reference", default=None, metavar="LABEL=VALUE",
                        help="A held-out geometric mean to draw as a level line on the plot, e.g. shipped=0.005264.")
    return parser.parse_args(argv)


def read_saves(run: str | Path) -> list[dict]:
    """One row per save that logged a held-out figure: step, minutes, best snapshot and its two means."""
    path = Path(run).expanduser() / "log.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass the --checkpoint-dir of a train_generator run.")
    saves = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        geometric = entry.get("held_out_x0_mse_geometric")
        if not geometric:
            continue
        best = min(geometric, key=geometric.get)
        saves.append({"step": entry["step"], "minutes": entry["train_min"], "ema": best,
                      "geometric": geometric[best], "mean": entry["held_out_x0_mse"][best]})
    if not saves:
        raise SystemExit(f"{path} has no save with a held-out figure yet.")
    return saves


def save_at(saves: list[dict], minutes: float) -> dict | None:
    """The last save at or before `minutes` of training, or None if the run had not saved by then."""
    earlier = [save for save in saves if save["minutes"] <= minutes]
    return earlier[-1] if earlier else None


def table(runs: dict[str, list[dict]], at_minutes: list[float] | None, batch_size: int) -> str:
    lines = ["| run | at min | step | images | train min | EMA | held-out x0-MSE | geometric mean |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, saves in runs.items():
        rows = [(m, save_at(saves, m)) for m in at_minutes] if at_minutes else [(s["minutes"], s) for s in saves]
        for minutes, save in rows:
            if save is None:
                lines.append(f"| {name} | {minutes:g} | – | – | – | – | no save yet | – |")
                continue
            lines.append(f"| {name} | {minutes:g} | {save['step']} | {save['step'] * batch_size:,} | "
                         f"{save['minutes']:.1f} | {save['ema']} | {save['mean']:.5f} | {save['geometric']:.6f} |")
    return "\n".join(lines)


def parse_reference(text: str | None) -> tuple[str, float] | None:
    if text is None:
        return None
    label, _, value = text.rpartition("=")
    try:
        return label or "reference", float(value)
    except ValueError:
        raise SystemExit(f"--reference {text!r}: expected LABEL=VALUE with a number, e.g. shipped=0.005264.") from None


def plot(runs: dict[str, list[dict]], path: str, reference: tuple[str, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, saves in runs.items():
        axis.plot([s["minutes"] for s in saves], [s["geometric"] for s in saves], marker="o", label=name)
    if reference:
        axis.axhline(reference[1], color="grey", linestyle="--", label=f"{reference[0]} ({reference[1]:g})")
    axis.set(xlabel="training minutes (one CPU thread)", ylabel="held-out x0-MSE, geometric mean", yscale="log")
    axis.legend()
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(args: argparse.Namespace) -> str:
    reference = parse_reference(args.reference)
    runs = {Path(run).expanduser().name: read_saves(run) for run in args.runs}
    text = table(runs, args.at_minutes, args.batch_size)
    print(text)
    if args.plot:
        plot(runs, args.plot, reference)
    return text


if __name__ == "__main__":
    main(parse_args())
