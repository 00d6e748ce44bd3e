"""Write the human realism figure: how often people spot the bank's synthetic tiles, per class.

    python -m training.realism_report --database-url sqlite:////data/pathgen.sqlite3

Reads the anonymous per-tile counts that the app's real-or-synthetic round stores (`pathgen.storage`) and
writes `assets/metrics/realism.json`: per class, the share of synthetic tiles that people called synthetic and
the share of real tiles they called synthetic (false alarms), each with an exact 95% binomial interval, and the
bank tiles most often spotted (the bank's most obvious fakes, worth replacing). The model card shows it.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from pathgen.data import TISSUE_CLASSES
from pathgen.realism import most_obvious_fakes, realism_by_class
from pathgen.storage import Storage
from training.provenance import command_line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None,
                        help="Database with the counts (default: $PATHGEN_DATABASE_URL, else the app's SQLite file).")
    parser.add_argument("--output", default="assets/metrics/realism.json", help="JSON file to write.")
    parser.add_argument("--top", type=int, default=20, help="How many of the most-spotted bank tiles to list.")
    parser.add_argument("--min-shown", type=int, default=5,
                        help="A tile enters the most-spotted list only after this many judgements.")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    storage = Storage.from_url(args.database_url)
    try:
        counts = storage.realism_counts()
    finally:
        storage.close()
    keys = tuple(c.key for c in TISSUE_CLASSES)
    synthetic = [c for c in counts if c["is_synthetic"]]
    report = {
        "command": command_line("training.realism_report", argparse.Namespace(
            **{**vars(args), "database_url": "<redacted>" if args.database_url else None})),
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tiles_judged": len(counts),
        "judgements": sum(c["shown"] for c in counts),
        "synthetic_spotted_overall": (sum(c["judged_synthetic"] for c in synthetic) / sum(c["shown"] for c in synthetic)
                                      if synthetic else None),
        "per_class": realism_by_class(counts, keys),
        "most_spotted_bank_tiles": most_obvious_fakes(counts, args.top, args.min_shown),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {output}: {report['judgements']} judgements of {report['tiles_judged']} tiles")
    return report


if __name__ == "__main__":
    main(parse_args())
