"""Quiz rules: which bank images a round asks about, how answers are scored, and the end summary.

Everything is a pure function over an immutable `QuizState`, so the app can keep one state per
browser session and tests can play whole quizzes without a UI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .bank import ImageBank
from .data import CLASS_NAMES, NUM_CLASSES, TISSUE_CLASSES, TissueClass, resolve_class

DIFFICULTIES = ("easy", "hard", "mixed")
REVIEW = "review"
MAX_QUESTIONS = 50
DEFAULT_THRESHOLD = 0.9
# Easy and hard rounds draw from this top share of each class's ranking rather than its very top,
# so that repeated rounds show different slides while staying easy (or hard).
POOL_FRACTION = 0.25


@dataclass(frozen=True)
class QuizState:
    """One round: the slides asked (bank indices), their true classes, the classifier's view of each,
    and the trainee's answers so far (class indices, in order)."""

    questions: tuple[int, ...]
    labels: tuple[int, ...]
    probabilities: tuple[tuple[float, ...], ...]
    kind: str
    answers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.questions)
        if n == 0 or len(self.labels) != n or len(self.probabilities) != n:
            raise ValueError("A quiz needs at least one question, with one label and one probability row each.")
        if len(self.answers) > n:
            raise ValueError(f"{len(self.answers)} answers for a quiz of {n} questions.")
        if self.kind not in (*DIFFICULTIES, REVIEW):
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
        """Bank index of the slide now being asked, or None when the round is over."""
        return None if self.finished else self.questions[self.position]


@dataclass(frozen=True)
class Feedback:
    """What the trainee sees after answering; `state` is the quiz with that answer recorded."""

    state: QuizState
    bank_index: int
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

    @property
    def accuracy(self) -> float:
        return self.score / self.answered if self.answered else 0.0

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        return {name: right / asked for name, (right, asked) in self.per_class.items()}


def new_quiz(bank: ImageBank, n_questions: int, difficulty: str = "mixed",
             focus_classes: list[int | str] | None = None, seed: int | None = None,
             threshold: float | None = None) -> QuizState:
    """Draws `n_questions` slides spread evenly over the chosen classes.

    easy: slides the classifier is most sure of; hard: those whose confidence lies nearest the
    acceptance threshold (the bank's, unless given); mixed: any. Raises ValueError with a message
    fit for the trainee when the request cannot be met.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"Difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}.")
    if isinstance(n_questions, bool) or not isinstance(n_questions, (int, np.integer)) \
            or not 1 <= n_questions <= MAX_QUESTIONS:
        raise ValueError(f"Number of questions must be a whole number from 1 to {MAX_QUESTIONS}, got {n_questions!r}.")
    if focus_classes is None:
        classes = list(range(NUM_CLASSES))
    else:
        classes = sorted({resolve_class(c).index for c in focus_classes})
        if not classes:
            raise ValueError("Choose at least one tissue class to focus on.")
    ranked = {c: _rank(bank, c, difficulty, threshold) for c in classes}
    available = {c: len(r) for c, r in ranked.items() if len(r)}
    if not available:
        names = ", ".join(CLASS_NAMES[c] for c in classes)
        raise ValueError(f"The image bank has no images of {names}.")
    if n_questions > sum(available.values()):
        raise ValueError(f"Only {sum(available.values())} images are available for the chosen classes; "
                         f"ask for at most that many questions.")

    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for c, count in _allocate(int(n_questions), available, rng).items():
        order = ranked[c]
        pool = order if difficulty == "mixed" else order[: max(count, math.ceil(len(order) * POOL_FRACTION))]
        chosen.extend(int(i) for i in rng.choice(pool, size=count, replace=False))
    questions = [chosen[i] for i in rng.permutation(len(chosen))]
    return _state_for(bank, questions, difficulty)


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
        correct=chosen.index == truth.index,
        chosen=chosen,
        truth=truth,
        classifier_top3=tuple((CLASS_NAMES[i], float(probabilities[i])) for i in top),
    )


def summary(state: QuizState) -> QuizSummary:
    """Score, per-class accuracy and confusion matrix over the questions answered so far."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    answered = len(state.answers)
    np.add.at(confusion, (np.asarray(state.labels[:answered], dtype=np.int64),
                          np.asarray(state.answers, dtype=np.int64)), 1)
    per_class = {CLASS_NAMES[c]: (int(confusion[c, c]), int(confusion[c].sum()))
                 for c in range(NUM_CLASSES) if confusion[c].sum()}
    return QuizSummary(answered=answered, total=state.total, score=state.score, per_class=per_class,
                       confusion=confusion)


def review_mistakes(state: QuizState) -> QuizState:
    """A new round over the slides answered wrongly, in the order they were asked."""
    wrong = [i for i, (a, t) in enumerate(zip(state.answers, state.labels, strict=False)) if a != t]
    if not wrong:
        raise ValueError("No mistakes to review: every answered slide was right.")
    return QuizState(questions=tuple(state.questions[i] for i in wrong), labels=tuple(state.labels[i] for i in wrong),
                     probabilities=tuple(state.probabilities[i] for i in wrong), kind=REVIEW)


def _rank(bank: ImageBank, class_index: int, difficulty: str, threshold: float | None) -> np.ndarray:
    """Bank indices of one class in drawing order (easiest, or hardest, first); ties keep bank order."""
    indices = bank.indices_of(class_index)
    confidence = bank.confidence()[indices]
    if difficulty == "easy":
        return indices[np.argsort(-confidence, kind="stable")]
    if difficulty == "hard":
        limit = float(bank.info.get("threshold", DEFAULT_THRESHOLD)) if threshold is None else threshold
        return indices[np.argsort(np.abs(confidence - limit), kind="stable")]
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


def _state_for(bank: ImageBank, questions: list[int], kind: str) -> QuizState:
    return QuizState(questions=tuple(questions), labels=tuple(int(bank.labels[i]) for i in questions),
                     probabilities=tuple(tuple(float(p) for p in bank.probabilities[i]) for i in questions), kind=kind)
