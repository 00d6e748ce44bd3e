"""Time a synthetic PathMNIST export against issue 16's budget: 5000 validated tiles per class at the `live`
profile in under an hour on 2 cores.

    python -m benchmarks.export --per-class 5000 --workers 2
    python -m benchmarks.export --from-record assets/metrics/export_live_5000.json

The export runs into a fresh temporary folder (an empty chunk cache, so nothing is resumed) and prints its
wall time, validated tiles per second, and the ratio of the time to the budget (below 1 meets it). A smaller
--per-class also prints the time projected to 5000 per class at the measured rate. --from-record prints the
same figures from an export's own JSON record instead of running one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pathgen.generation import PROFILES
from training import export_synthetic
from training.provenance import command_line

BUDGET_MIN = 60.0
TARGET_PER_CLASS = 5000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=TARGET_PER_CLASS, help="Validated train tiles per class.")
    parser.add_argument("--workers", type=int, default=2, help="Export processes, one CPU thread each.")
    parser.add_argument("--profile", choices=PROFILES, default="live", help="The generator's sampling profile.")
    parser.add_argument("--from-record", default=None,
                        help="An export's JSON record to report instead of running an export.")
    parser.add_argument("--output", default=None, help="Also write the figures to this JSON file.")
    return parser.parse_args(argv)


def summarise(record: dict) -> dict:
    """Wall time, rate and budget ratio of one export record, projected to 5000 per class, with the export's
    command and model hashes."""
    train = record["splits"]["train"]
    minutes = record["wall_time_s"] / 60
    tiles_per_s = train["tiles"] / record["wall_time_s"]
    projected_min = minutes * TARGET_PER_CLASS / train["per_class"]
    return {"export_command": record["command"], "generator": record.get("generator"),
            "classifier": record.get("classifier"), "profile": record["sampling"]["profile"], "workers": record["workers"],
            "tiles": train["tiles"], "per_class": train["per_class"], "wall_min": round(minutes, 2),
            "validated_tiles_per_s": round(tiles_per_s, 2), "projected_min_at_5000": round(projected_min, 2),
            "ratio_to_budget": round(projected_min / BUDGET_MIN, 3), "budget_min": BUDGET_MIN}


def run_export(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="pathgen-export-bench-") as folder:
        argv = ["--per-class", str(args.per_class), "--output", str(Path(folder) / "pathmnist.npz"),
                "--profile", args.profile, "--workers", str(args.workers), "--cache-dir", str(Path(folder) / "chunks"),
                "--seed", "0"]
        return export_synthetic.main(export_synthetic.parse_args(argv))


def main(args: argparse.Namespace) -> dict:
    if args.from_record:
        record = json.loads(Path(args.from_record).read_text())
    else:
        record = run_export(args)
    figures = {"command": command_line("benchmarks.export", args), **summarise(record)}
    print(f"{figures['tiles']} validated tiles ({figures['per_class']} per class, {figures['profile']} profile, "
          f"{figures['workers']} workers) in {figures['wall_min']:.1f} min: {figures['validated_tiles_per_s']:.1f} tiles/s")
    print(f"projected to {TARGET_PER_CLASS} per class: {figures['projected_min_at_5000']:.1f} min; "
          f"ratio to the {BUDGET_MIN:.0f}-min budget: {figures['ratio_to_budget']:.2f} (below 1 meets it)")
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main(parse_args())
