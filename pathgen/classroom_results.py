"""What the instructor dashboard shows about an assignment, and its CSV export. Pure functions over the
assignment's draw and the stored answers."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .classroom import REAL, SYNTHETIC, Slide
from .data import CLASS_NAMES, TISSUE_CLASSES

HARDEST = 6
CSV_COLUMNS = ("assignment", "nickname", "slide", "source", "tile_index", "tissue", "answer", "correct", "synthetic",
               "response_ms", "answered_at_utc")


@dataclass(frozen=True)
class AnswerRecord:
    """One stored answer, as the storage layer returns it."""

    student_id: int
    nickname: str
    slide: int
    answer: str
    correct: bool
    synthetic: bool
    response_ms: int
    answered_at: datetime


@dataclass(frozen=True)
class Tally:
    right: int
    asked: int

    @property
    def accuracy(self) -> float | None:
        return self.right / self.asked if self.asked else None


@dataclass(frozen=True)
class ClassResults:
    slides: int
    students: int
    finished: int
    answers: Tally
    per_class: dict[str, Tally]  # tissue name -> tally, only classes in the draw
    by_source: dict[str, Tally]  # "real" / "synthetic"
    confusion: np.ndarray  # rows: truth, columns: the class's answers
    confusion_labels: tuple[str, ...]
    hardest: list[tuple[int, Tally]]  # (slide, tally), lowest accuracy first, only slides answered
    per_student: list[dict]


def _tally(rows: Sequence[AnswerRecord]) -> Tally:
    return Tally(sum(bool(r.correct) for r in rows), len(rows))


def _confusion(mode: str, slides: Sequence[Slide], answers: Sequence[AnswerRecord]) -> tuple[np.ndarray, tuple[str, ...]]:
    if mode == "real_or_synthetic":
        labels, index = (REAL, SYNTHETIC), {REAL: 0, SYNTHETIC: 1}
        matrix = np.zeros((2, 2), dtype=np.int64)
        for a in answers:
            matrix[int(slides[a.slide].synthetic), index[a.answer]] += 1
        return matrix, labels
    keys = {c.key: c.index for c in TISSUE_CLASSES}
    matrix = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=np.int64)
    for a in answers:
        matrix[slides[a.slide].label, keys[a.answer]] += 1
    return matrix, CLASS_NAMES


def _per_student(students: Sequence[tuple[int, str]], answers: Sequence[AnswerRecord], n_slides: int) -> list[dict]:
    rows = []
    for student_id, nickname in students:
        own = [a for a in answers if a.student_id == student_id]
        real = _tally([a for a in own if not a.synthetic])
        synthetic = _tally([a for a in own if a.synthetic])
        rows.append({"nickname": nickname, "answered": len(own), "of": n_slides, "right": _tally(own).right,
                     "accuracy": _tally(own).accuracy, "real_accuracy": real.accuracy,
                     "synthetic_accuracy": synthetic.accuracy,
                     "median_response_s": statistics.median(a.response_ms for a in own) / 1000 if own else None})
    return rows


def class_results(mode: str, slides: Sequence[Slide], students: Sequence[tuple[int, str]],
                  answers: Sequence[AnswerRecord]) -> ClassResults:
    """Completion, accuracy per class and per source, the confusion matrix, the hardest slides and a
    row per student. `students` are (id, nickname) pairs, including those who have not answered yet."""
    per_class = {CLASS_NAMES[c]: _tally([a for a in answers if slides[a.slide].label == c])
                 for c in sorted({s.label for s in slides})}
    by_slide = {i: _tally([a for a in answers if a.slide == i]) for i in sorted({a.slide for a in answers})}
    hardest = sorted(by_slide.items(), key=lambda item: (item[1].accuracy, -item[1].asked, item[0]))[:HARDEST]
    per_student = _per_student(students, answers, len(slides))
    confusion, labels = _confusion(mode, slides, answers)
    return ClassResults(
        slides=len(slides), students=len(students), finished=sum(r["answered"] == len(slides) for r in per_student),
        answers=_tally(answers), per_class=per_class,
        by_source={REAL: _tally([a for a in answers if not a.synthetic]),
                   SYNTHETIC: _tally([a for a in answers if a.synthetic])},
        confusion=confusion, confusion_labels=labels, hardest=hardest, per_student=per_student)


def results_csv(code: str, slides: Sequence[Slide], answers: Sequence[AnswerRecord]) -> str:
    """One row per stored answer (nicknames cannot start a spreadsheet formula: see NICKNAME_PATTERN)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in answers:
        slide = slides[a.slide]
        writer.writerow([code, a.nickname, a.slide, slide.source, slide.index, TISSUE_CLASSES[slide.label].key, a.answer,
                         int(bool(a.correct)), int(bool(a.synthetic)), a.response_ms,
                         a.answered_at.isoformat(timespec="milliseconds")])
    return out.getvalue()
