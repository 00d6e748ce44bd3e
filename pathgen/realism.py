"""Real-or-synthetic rounds: which tiles are shown, how judgements are scored, and what the counts say.

A round mixes real PathMNIST tiles and bank tiles; the trainee says which each one is (and optionally its
tissue type). Detection accuracy comes with an exact binomial interval: 50% means the trainee cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import binomtest

from .checks import is_whole_in
from .data import CLASS_NAMES, NUM_CLASSES

MAX_TILES = 40
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RealismRound:
    """The tiles of one round as (source, index) with their true classes, and the judgements so far:
    for each answered tile, whether the trainee called it synthetic and which class they named (or -1)."""

    tiles: tuple[tuple[str, int], ...]
    labels: tuple[int, ...]
    judged_synthetic: tuple[bool, ...] = ()
    class_guesses: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return len(self.tiles)

    @property
    def position(self) -> int:
        return len(self.judged_synthetic)

    @property
    def finished(self) -> bool:
        return self.position == self.total

    @property
    def current(self) -> tuple[str, int] | None:
        return None if self.finished else self.tiles[self.position]


@dataclass(frozen=True)
class Detection:
    correct: int
    judged: int
    low: float  # the exact (Clopper-Pearson) interval for the detection rate
    high: float
    p_value: float  # two-sided, against guessing (50%)
    tissue_correct: int = 0
    tissue_named: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.judged if self.judged else 0.0

    @property
    def verdict(self) -> str:
        if not self.judged:
            return "No tiles judged yet."
        if self.low > 0.5:
            return "You can tell real from synthetic tiles better than chance."
        if self.high < 0.5:
            return "You call tiles the wrong way round more often than chance would."
        return "From these answers you cannot tell real from synthetic tiles better than chance (50%)."


def new_round(bank_labels: np.ndarray, real_labels: np.ndarray, n: int, seed: int | None = None) -> RealismRound:
    """n tiles, half real and half synthetic (the odd one either), spread over the classes, in random order."""
    if not is_whole_in(n, 2, MAX_TILES):
        raise ValueError(f"A round has from 2 to {MAX_TILES} tiles, got {n!r}.")
    rng = np.random.default_rng(seed)
    n_real = n // 2 + int(rng.integers(2)) * (n % 2)
    picks = _spread(real_labels, n_real, rng, "real") + _spread(bank_labels, n - n_real, rng, "synthetic")
    picks = [picks[i] for i in rng.permutation(len(picks))]
    return RealismRound(tiles=tuple((source, index) for source, index, _ in picks),
                        labels=tuple(label for _, _, label in picks))


def _spread(labels: np.ndarray, n: int, rng: np.random.Generator, source: str) -> list[tuple[str, int, int]]:
    if n > len(labels):
        raise ValueError(f"Only {len(labels)} {source} tiles are available.")
    # Classes in random order, then one tile of each in turn, so that a round covers as many classes as it can.
    by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in rng.permutation(NUM_CLASSES)]
    picks: list[tuple[str, int, int]] = []
    while len(picks) < n:
        for indices in by_class:
            if indices and len(picks) < n:
                index = indices.pop()
                picks.append((source, int(index), int(labels[index])))
    return picks


def judge(state: RealismRound, judged_synthetic: bool, class_guess: int | None = None) -> RealismRound:
    if state.finished:
        raise ValueError("This round is finished; start a new one.")
    if not isinstance(judged_synthetic, bool):
        raise ValueError("A judgement is real or synthetic.")
    if class_guess is not None and not 0 <= class_guess < NUM_CLASSES:
        raise ValueError("Unknown tissue class.")
    return replace(state, judged_synthetic=(*state.judged_synthetic, judged_synthetic),
                   class_guesses=(*state.class_guesses, -1 if class_guess is None else int(class_guess)))


def detection(state: RealismRound, confidence: float = CONFIDENCE) -> Detection:
    """Detection accuracy over the judged tiles, with an exact binomial interval and a test against 50%."""
    truth = [source == "synthetic" for source, _ in state.tiles[: state.position]]
    correct = sum(t == j for t, j in zip(truth, state.judged_synthetic, strict=True))
    named = [(g, label) for g, label in zip(state.class_guesses, state.labels, strict=False) if g >= 0]
    if not truth:
        return Detection(0, 0, 0.0, 1.0, 1.0)
    test = binomtest(correct, len(truth), 0.5)
    interval = test.proportion_ci(confidence_level=confidence, method="exact")
    return Detection(correct=correct, judged=len(truth), low=float(interval.low), high=float(interval.high),
                     p_value=float(test.pvalue), tissue_correct=sum(g == label for g, label in named),
                     tissue_named=len(named))


def class_of_key(tile_key: str) -> str | None:
    """The class key inside a tile key ("real:<class>:val<i>" or "bank:<class>:<seed>"), or None."""
    parts = tile_key.split(":")
    return parts[1] if len(parts) == 3 else None


def realism_by_class(counts: list[dict], class_keys: tuple[str, ...]) -> list[dict]:
    """Per class, from stored per-tile counts: how often people called synthetic tiles synthetic (spotted) and
    real tiles synthetic (false alarms), each as a rate with its exact 95% interval."""
    rows = []
    for index, key in enumerate(class_keys):
        row: dict = {"class": key, "name": CLASS_NAMES[index]}
        for synthetic, name in ((True, "synthetic_spotted"), (False, "real_called_synthetic")):
            mine = [c for c in counts if c["is_synthetic"] == synthetic and class_of_key(c["tile_key"]) == key]
            shown, called = sum(c["shown"] for c in mine), sum(c["judged_synthetic"] for c in mine)
            interval = binomtest(called, shown).proportion_ci(method="exact") if shown else None
            row[name] = {"judgements": shown, "rate": called / shown if shown else None,
                         "ci95": [float(interval.low), float(interval.high)] if shown else None}
        rows.append(row)
    return rows


def most_obvious_fakes(counts: list[dict], top: int = 10, min_shown: int = 3) -> list[dict]:
    """Synthetic tiles most often called synthetic (shown at least `min_shown` times), most obvious first."""
    fakes = [c for c in counts if c["is_synthetic"] and c["shown"] >= min_shown]
    return sorted(fakes, key=lambda c: (-c["judged_synthetic"] / c["shown"], -c["shown"], c["tile_key"]))[:top]
