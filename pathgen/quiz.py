"""Quiz rules: which tiles (synthetic from the bank, or real) a round asks about, scoring, and the end summary.

Everything is a pure function over an immutable `QuizState`, so the app can keep one state per
browser session and tests can play whole quizzes without a UI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .bank import ImageBank
from .checks import is_number_in, is_whole_in
from .data import CLASS_NAMES, NUM_CLASSES, TISSUE_CLASSES, TissueClass, resolve_class

DIFFICULTIES = ("easy", "hard", "mixed")
SOURCES = ("synthetic", "real")
REVIEW = "review"
PRACTICE = "practice"
MAX_QUESTIONS = 50
DEFAULT_THRESHOLD = 0.9
# Easy and hard rounds draw from this top share of each class's ranking rather than its very top,
# so that repeated rounds show different slides while staying easy (or hard).
POOL_FRACTION = 0.25


@dataclass(frozen=True)
class QuizState:
    """One round: the slides asked (indices into the bank, or into the real tiles where `sources` says "real"),
    their true classes, the classifier's view of each, and the trainee's answers so far (class indices, in order)."""

    questions: tuple[int, ...]
    labels: tuple[int, ...]
    probabilities: tuple[tuple[float, ...], ...]
    kind: str
    answers: tuple[int, ...] = ()
    sources: tuple[str, ...] = ()  # per question; empty means every slide is synthetic

    def __post_init__(self) -> None:
        n = len(self.questions)
        if not self.sources:
            object.__setattr__(self, "sources", ("synthetic",) * n)
        if len(self.sources) != n or not set(self.sources) <= set(SOURCES):
            raise ValueError(f"sources must give {n} values from {SOURCES}.")
        if n == 0 or len(self.labels) != n or len(self.probabilities) != n:
            raise ValueError("A quiz needs at least one question, with one label and one probability row each.")
        if len(self.answers) > n:
            raise ValueError(f"{len(self.answers)} answers for a quiz of {n} questions.")
        if self.kind not in (*DIFFICULTIES, REVIEW, PRACTICE):
            raise ValueError(f"Unknown quiz kind {self.kind!r}.")

    @property
    def total(self) -> int:
        return len(self.questions)

    @property
    def position(self) -> int:
        """Index of the question now being asked (== total once finished)."""
        return len(self.answers)

    @property
    def score(self) -> int:
        return sum(a == t for a, t in zip(self.answers, self.labels, strict=False))

    @property
    def finished(self) -> bool:
        return self.position == self.total

    @property
    def current_question(self) -> int | None:
        """Index (bank or real tiles, see current_source) of the slide now being asked, or None when over."""
        return None if self.finished else self.questions[self.position]

    @property
    def current_source(self) -> str | None:
        return None if self.finished else self.sources[self.position]


@dataclass(frozen=True)
class RealTiles:
    """The real tiles a quiz may ask about: their true classes and the classifier's view of each."""

    labels: np.ndarray  # int [M]
    probabilities: np.ndarray  # float [M, 9]

    def indices_of(self, class_index: int) -> np.ndarray:
        return np.flatnonzero(self.labels == class_index)

    def confidence(self) -> np.ndarray:
        return self.probabilities[np.arange(len(self.labels)), self.labels]


@dataclass(frozen=True)
class Feedback:
    """What the trainee sees after answering; `state` is the quiz with that answer recorded."""

    state: QuizState
    bank_index: int  # the slide's index into the bank, or into the real tiles when `source` is "real"
    source: str
    correct: bool
    chosen: TissueClass
    truth: TissueClass
    classifier_top3: tuple[tuple[str, float], ...]

    @property
    def description(self) -> str:
        return self.truth.description


@dataclass(frozen=True)
class QuizSummary:
    answered: int
    total: int
    score: int
    per_class: dict[str, tuple[int, int]]  # class name -> (correct, asked), only classes that were asked
    confusion: np.ndarray  # [9, 9] counts; rows: true class, columns: the trainee's answer
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)  # "real"/"synthetic" -> (correct, asked)
    # class name -> {"real"/"synthetic": (correct, asked)}, only classes that were asked
    per_class_by_source: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.score / self.answered if self.answered else 0.0

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        return {name: right / asked for name, (right, asked) in self.per_class.items()}


def new_quiz(bank: ImageBank, n_questions: int, difficulty: str = "mixed",
             focus_classes: list[int | str] | None = None, seed: int | None = None,
             threshold: float | None = None, real: RealTiles | None = None, real_share: float = 0.0) -> QuizState:
    """Draws `n_questions` slides spread evenly over the chosen classes, round(n * real_share) of them real.

    easy: slides the classifier is most sure of; hard: those whose confidence lies nearest the
    acceptance threshold (the bank's, unless given); mixed: any. Raises ValueError with a message
    fit for the trainee when the request cannot be met.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"Difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}.")
    if not is_whole_in(n_questions, 1, MAX_QUESTIONS):
        raise ValueError(f"Number of questions must be a whole number from 1 to {MAX_QUESTIONS}, got {n_questions!r}.")
    if not is_number_in(real_share, 0.0, 1.0):
        raise ValueError(f"The share of real tiles must be from 0 to 1, got {real_share!r}.")
    if real is None and real_share > 0:
        raise ValueError("This app has no real tiles to quiz on; set the share of real tiles to 0.")
    if focus_classes is None:
        classes = list(range(NUM_CLASSES))
    else:
        classes = sorted({resolve_class(c).index for c in focus_classes})
        if not classes:
            raise ValueError("Choose at least one tissue class to focus on.")
    limit = float(bank.info.get("threshold", DEFAULT_THRESHOLD)) if threshold is None else threshold
    n_real = round(int(n_questions) * real_share)
    rng = np.random.default_rng(seed)
    picks = _draw(bank.labels, bank.confidence(), classes, int(n_questions) - n_real, difficulty, limit, rng, "synthetic")
    if n_real:
        picks += _draw(real.labels, real.confidence(), classes, n_real, difficulty, limit, rng, "real")
    picks = [picks[i] for i in rng.permutation(len(picks))]
    return _state_for(bank, real, picks, difficulty)


def practice_quiz(bank: ImageBank, classes: list[int], real: RealTiles | None = None, real_share: float = 0.0,
                  seed: int | None = None) -> QuizState:
    """A round that asks one slide of each class in `classes`, in that order (e.g. a spaced-repetition schedule's
    interleaving), each real with probability `real_share` when a real tile of that class is left."""
    if not classes or len(classes) > MAX_QUESTIONS:
        raise ValueError(f"A practice round has from 1 to {MAX_QUESTIONS} slides.")
    rng = np.random.default_rng(seed)
    left = {"synthetic": {c: list(rng.permutation(bank.indices_of(c))) for c in set(classes)},
            "real": {c: list(rng.permutation(real.indices_of(c))) if real is not None else [] for c in set(classes)}}
    picks = []
    for c in classes:
        order = ("real", "synthetic") if rng.random() < real_share else ("synthetic", "real")
        source = next((s for s in order if left[s][c]), None)
        if source is None:
            raise ValueError(f"Not enough tiles of {CLASS_NAMES[c]} for this practice round.")
        picks.append((source, int(left[source][c].pop())))
    return _state_for(bank, real, picks, PRACTICE)


def _draw(labels: np.ndarray, confidence: np.ndarray, classes: list[int], n: int, difficulty: str, threshold: float,
          rng: np.random.Generator, source: str) -> list[tuple[str, int]]:
    """n (source, index) picks of one source, spread evenly over `classes`."""
    if n == 0:
        return []
    ranked = {c: _rank(labels, confidence, c, difficulty, threshold) for c in classes}
    available = {c: len(r) for c, r in ranked.items() if len(r)}
    kind = "image bank" if source == "synthetic" else "set of real tiles"
    if not available:
        raise ValueError(f"The {kind} has no images of {', '.join(CLASS_NAMES[c] for c in classes)}.")
    if n > sum(available.values()):
        raise ValueError(f"Only {sum(available.values())} {source} images are available for the chosen classes; "
                         f"ask for at most that many {source} questions.")
    chosen: list[tuple[str, int]] = []
    for c, count in _allocate(n, available, rng).items():
        order = ranked[c]
        pool = order if difficulty == "mixed" else order[: max(count, math.ceil(len(order) * POOL_FRACTION))]
        chosen.extend((source, int(i)) for i in rng.choice(pool, size=count, replace=False))
    return chosen


def answer(state: QuizState, class_ref: int | str) -> Feedback:
    """Records the trainee's answer to the current slide (an index, key or display name)."""
    if state.finished:
        raise ValueError("This quiz is finished; start a new one or review your mistakes.")
    chosen = resolve_class(class_ref)
    position = state.position
    truth = TISSUE_CLASSES[state.labels[position]]
    probabilities = np.asarray(state.probabilities[position])
    top = np.argsort(-probabilities, kind="stable")[:3]
    return Feedback(
        state=replace(state, answers=(*state.answers, chosen.index)),
        bank_index=state.questions[position],
        source=state.sources[position],
        correct=chosen.index == truth.index,
        chosen=chosen,
        truth=truth,
        classifier_top3=tuple((CLASS_NAMES[i], float(probabilities[i])) for i in top),
    )


def summary(state: QuizState) -> QuizSummary:
    """Score, per-class accuracy (overall and real vs synthetic) and confusion matrix over the answers so far."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    answered = len(state.answers)
    np.add.at(confusion, (np.asarray(state.labels[:answered], dtype=np.int64),
                          np.asarray(state.answers, dtype=np.int64)), 1)
    per_class = {CLASS_NAMES[c]: (int(confusion[c, c]), int(confusion[c].sum()))
                 for c in range(NUM_CLASSES) if confusion[c].sum()}
    by_source: dict[str, list[int]] = {}
    per_class_by_source: dict[str, dict[str, list[int]]] = {}
    for label, given, source in zip(state.labels, state.answers, state.sources, strict=False):
        for tally in (by_source.setdefault(source, [0, 0]),
                      per_class_by_source.setdefault(CLASS_NAMES[label], {}).setdefault(source, [0, 0])):
            tally[0] += int(label == given)
            tally[1] += 1
    return QuizSummary(answered=answered, total=state.total, score=state.score, per_class=per_class,
                       confusion=confusion, by_source={k: tuple(v) for k, v in by_source.items()},
                       per_class_by_source={name: {k: tuple(v) for k, v in tallies.items()}
                                            for name, tallies in per_class_by_source.items()})


# Below this many answers on either kind of tile, a comparison of real and synthetic accuracy says too little.
MIN_FOR_TRANSFER = 5
TRANSFER_MARGIN = 0.10


def transfer_verdict(result: QuizSummary) -> str:
    """One plain sentence: does the trainee do as well on real tissue as on synthetic tiles?"""
    real, synthetic = result.by_source.get("real", (0, 0)), result.by_source.get("synthetic", (0, 0))
    if not real[1] or not synthetic[1]:
        return "This round had only one kind of tile, so it cannot compare real and synthetic tissue."
    real_accuracy, synthetic_accuracy = real[0] / real[1], synthetic[0] / synthetic[1]
    figures = f"real {real_accuracy:.0%} ({real[0]}/{real[1]}), synthetic {synthetic_accuracy:.0%} " \
              f"({synthetic[0]}/{synthetic[1]})"
    if min(real[1], synthetic[1]) < MIN_FOR_TRANSFER:
        return f"Too few answers yet to compare real and synthetic tissue ({figures})."
    if real_accuracy >= synthetic_accuracy - TRANSFER_MARGIN:
        return f"You do as well on real tissue as on synthetic tiles ({figures})."
    return f"You do worse on real tissue than on synthetic tiles ({figures}): practise with more real tiles."


def review_mistakes(state: QuizState) -> QuizState:
    """A new round over the slides answered wrongly, in the order they were asked."""
    wrong = [i for i, (a, t) in enumerate(zip(state.answers, state.labels, strict=False)) if a != t]
    if not wrong:
        raise ValueError("No mistakes to review: every answered slide was right.")
    return QuizState(questions=tuple(state.questions[i] for i in wrong), labels=tuple(state.labels[i] for i in wrong),
                     probabilities=tuple(state.probabilities[i] for i in wrong), kind=REVIEW,
                     sources=tuple(state.sources[i] for i in wrong))


def _rank(labels: np.ndarray, confidence: np.ndarray, class_index: int, difficulty: str,
          threshold: float) -> np.ndarray:
    """Indices of one class in drawing order (easiest, or hardest, first); ties keep their order."""
    indices = np.flatnonzero(labels == class_index)
    own = confidence[indices]
    if difficulty == "easy":
        return indices[np.argsort(-own, kind="stable")]
    if difficulty == "hard":
        return indices[np.argsort(np.abs(own - threshold), kind="stable")]
    return indices


def _allocate(n: int, available: dict[int, int], rng: np.random.Generator) -> dict[int, int]:
    """Spreads n questions as evenly as the classes' image counts allow; leftovers go to random classes."""
    counts = dict.fromkeys(available, 0)
    while n:
        open_classes = [c for c in available if counts[c] < available[c]]
        for c in rng.permutation(open_classes)[:n]:
            counts[int(c)] += 1
            n -= 1
    return {c: k for c, k in counts.items() if k}


def _state_for(bank: ImageBank, real: RealTiles | None, picks: list[tuple[str, int]], kind: str) -> QuizState:
    def row(source: str, i: int) -> tuple[int, np.ndarray]:
        return (int(bank.labels[i]), bank.probabilities[i]) if source == "synthetic" \
            else (int(real.labels[i]), real.probabilities[i])

    rows = [row(source, i) for source, i in picks]
    return QuizState(questions=tuple(i for _, i in picks), labels=tuple(label for label, _ in rows),
                     probabilities=tuple(tuple(float(p) for p in probs) for _, probs in rows), kind=kind,
                     sources=tuple(source for source, _ in picks))
