"""Spaced repetition over a trainee's answer history, scheduled by FSRS (the `fsrs` package).

Each tissue class is a card, and so is each pair of classes the trainee has confused. Replaying the history in
time order reviews the cards: an answer on a class's tile reviews that class's card (Good if right, Again if
wrong); it also reviews every confused-pair card that holds its class (Again if the answer was the pair's
other class, Good if right). The cards due at a given time make the next practice round, in which the two
classes of each confused pair alternate (interleaving, which is what builds discrimination).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from fsrs import Card, Rating, Scheduler

from .learning import CLASS_KEYS, clean

PRACTICE_SIZE = 10


@dataclass(frozen=True)
class DueCard:
    name: str  # "adipose" for a class card, "smooth_muscle+stroma" for a pair card
    classes: tuple[str, ...]  # one key, or the two keys of a confused pair
    due: datetime


def _scheduler() -> Scheduler:
    # No fuzzing: the same history and clock always give the same schedule.
    return Scheduler(enable_fuzzing=False)


def schedule(history: object) -> dict[tuple[str, ...], Card]:
    """Every card that the history has reviewed, after replaying it in time order."""
    scheduler, cards = _scheduler(), {}
    for record in clean(history):
        when = datetime.fromtimestamp(record["t"], tz=timezone.utc)
        reviews = [((record["class"],), Rating.Good if record["correct"] else Rating.Again)]
        if not record["correct"]:
            pair = tuple(sorted((record["class"], record["chosen"]), key=CLASS_KEYS.index))
            cards.setdefault(pair, Card(card_id=len(cards) + 1, due=when))
        for pair in [key for key in cards if len(key) == 2 and record["class"] in key]:
            confused = record["chosen"] in pair and not record["correct"]
            reviews.append((pair, Rating.Again if confused else Rating.Good))
        for key, rating in reviews:
            card = cards.setdefault(key, Card(card_id=len(cards) + 1, due=when))
            # A review can only move forward in time; answers in one sitting share the card's current step.
            cards[key], _ = scheduler.review_card(card, rating, review_datetime=max(when, card.last_review or when))
    return cards


def due_cards(history: object, now: datetime) -> list[DueCard]:
    """Cards due at `now`, pairs first, then the longest overdue."""
    due = [DueCard("+".join(key), key, card.due) for key, card in schedule(history).items() if card.due <= now]
    return sorted(due, key=lambda d: (-len(d.classes), d.due, d.name))


def practice_classes(due: list[DueCard], n: int = PRACTICE_SIZE, seed: int | None = None) -> list[int]:
    """The class of each slide of a practice round over the due cards: pairs' two classes alternate, and the
    cards take turns, so no class is asked twice in a row where that can be avoided."""
    if not due:
        raise ValueError("Nothing is due for practice yet: take a quiz first, or come back later.")
    rng = np.random.default_rng(seed)
    streams = []
    for card in due:
        order = list(card.classes) if len(card.classes) == 1 else list(rng.permutation(card.classes))
        streams.append(order)
    pointers, sequence, turn = [0] * len(streams), [], 0
    while len(sequence) < n:
        # The next stream in turn, unless its next class repeats the last slide's and another stream's does not.
        candidates = [(turn + k) % len(streams) for k in range(len(streams))]
        fresh = [i for i in candidates if not sequence or streams[i][pointers[i] % len(streams[i])] != sequence[-1]]
        index = (fresh or candidates)[0]
        sequence.append(streams[index][pointers[index] % len(streams[index])])
        pointers[index] += 1
        turn = index + 1
    return [CLASS_KEYS.index(key) for key in sequence]
