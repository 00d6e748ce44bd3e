"""A trainee's answer history: checking what a browser sends back, and the statistics of the progress view.

The history lives in the trainee's own browser (no account, no name): a list of records
{"t": seconds since the epoch, "class": true class key, "chosen": answered class key, "real": bool, "correct": bool}.
Whatever comes back from a browser is untrusted, so every function first keeps only well-formed records.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from .data import TISSUE_CLASSES

MAX_HISTORY = 5000  # the oldest answers are dropped beyond this, so the browser's storage stays small
CLASS_KEYS = tuple(c.key for c in TISSUE_CLASSES)
NAMES = {c.key: c.name for c in TISSUE_CLASSES}


def clean(history: object) -> list[dict]:
    """The well-formed records of `history`, oldest first (anything else is dropped)."""
    if not isinstance(history, list):
        return []
    kept = []
    for record in history[-MAX_HISTORY:]:
        if not isinstance(record, dict):
            continue
        t, truth, chosen = record.get("t"), record.get("class"), record.get("chosen")
        real, correct = record.get("real"), record.get("correct")
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and truth in CLASS_KEYS \
                and chosen in CLASS_KEYS and isinstance(real, bool) and correct == (truth == chosen):
            kept.append({"t": float(t), "class": truth, "chosen": chosen, "real": real, "correct": correct})
    return sorted(kept, key=lambda r: r["t"])


def append(history: object, records: list[dict]) -> list[dict]:
    """History with new records added, cleaned and capped at MAX_HISTORY."""
    return clean([*clean(history), *records])[-MAX_HISTORY:]


@dataclass(frozen=True)
class Progress:
    total: tuple[int, int]  # (correct, answered)
    by_source: dict[str, tuple[int, int]]  # "real"/"synthetic" -> (correct, answered)
    per_class: dict[str, dict[str, tuple[int, int]]]  # class key -> {"all"/"real"/"synthetic": (correct, answered)}
    confused_pairs: list[tuple[tuple[str, str], int]]  # unordered pairs of class keys mixed up, most often first


def tally(records: list[dict]) -> tuple[int, int]:
    return sum(r["correct"] for r in records), len(records)


def summarise(history: object) -> Progress:
    records = clean(history)
    by_source = {name: tally([r for r in records if r["real"] == (name == "real")]) for name in ("real", "synthetic")}
    per_class = {}
    for key in CLASS_KEYS:
        mine = [r for r in records if r["class"] == key]
        if mine:
            per_class[key] = {"all": tally(mine), "real": tally([r for r in mine if r["real"]]),
                              "synthetic": tally([r for r in mine if not r["real"]])}
    return Progress(total=tally(records), by_source=by_source, per_class=per_class,
                    confused_pairs=confused_pairs(records))


def confused_pairs(history: object) -> list[tuple[tuple[str, str], int]]:
    """Pairs of classes the trainee has mixed up (either way round), with how often, most often first."""
    counts = Counter(tuple(sorted((r["class"], r["chosen"]))) for r in clean(history) if not r["correct"])
    return sorted(counts.items(), key=lambda item: (-item[1], CLASS_KEYS.index(item[0][0]), CLASS_KEYS.index(item[0][1])))


def accuracy_over_time(history: object, window: int = 10) -> dict[str, list[tuple[float, float]]]:
    """Per class: (time of the answer, accuracy over that class's last `window` answers) after each answer."""
    series: dict[str, list[tuple[float, float]]] = {}
    recent: dict[str, list[bool]] = {}
    for record in clean(history):
        last = recent.setdefault(record["class"], [])
        last.append(record["correct"])
        del last[:-window]
        series.setdefault(record["class"], []).append((record["t"], sum(last) / len(last)))
    return series
