"""Progress statistics, spaced repetition (on fixed clocks) and confusable-pair texts over a browser's history."""

from datetime import datetime, timedelta, timezone

import pytest

from pathgen import comparisons, learning, scheduling
from pathgen.data import TISSUE_CLASSES

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def record(minutes: float, truth: str, chosen: str, real: bool = False) -> dict:
    return {"t": (START + timedelta(minutes=minutes)).timestamp(), "class": truth, "chosen": chosen, "real": real,
            "correct": truth == chosen}


def test_clean_keeps_only_well_formed_records_in_time_order():
    good = [record(2, "mucus", "mucus"), record(1, "stroma", "smooth_muscle", real=True)]
    junk = ["x", None, {"t": "now"}, {**good[0], "class": "bone"}, {**good[0], "correct": False},
            {**good[0], "t": float("nan")}, {**good[0], "real": "yes"}]
    assert learning.clean([*good, *junk]) == [good[1], good[0]]
    assert learning.clean("not a list") == [] and learning.clean(None) == []
    assert len(learning.append([], [record(i, "mucus", "mucus") for i in range(learning.MAX_HISTORY + 5)])) \
        == learning.MAX_HISTORY


def test_summary_splits_real_and_synthetic_and_finds_confused_pairs():
    history = [record(0, "stroma", "smooth_muscle"), record(1, "smooth_muscle", "stroma", real=True),
               record(2, "stroma", "stroma", real=True), record(3, "mucus", "normal_mucosa"),
               record(4, "mucus", "mucus")]
    result = learning.summarise(history)
    assert result.total == (2, 5)
    assert result.by_source == {"real": (1, 2), "synthetic": (1, 3)}
    assert result.per_class["stroma"] == {"all": (1, 2), "real": (1, 1), "synthetic": (0, 1)}
    assert result.confused_pairs == [(("smooth_muscle", "stroma"), 2), (("mucus", "normal_mucosa"), 1)]
    series = learning.accuracy_over_time(history, window=2)
    assert [a for _, a in series["stroma"]] == [0.0, 0.5]


def test_nothing_is_due_before_any_answer_and_practice_needs_due_cards():
    assert scheduling.due_cards([], START) == []
    with pytest.raises(ValueError, match="Nothing is due"):
        scheduling.practice_classes([])


def test_a_mistake_is_due_again_soon_and_a_right_answer_later():
    history = [record(0, "stroma", "smooth_muscle"), record(0.5, "adipose", "adipose")]
    cards = scheduling.schedule(history)
    assert set(cards) == {("stroma",), ("smooth_muscle", "stroma"), ("adipose",)}
    assert cards[("stroma",)].due < cards[("adipose",)].due
    # Five minutes on, the missed class and the confused pair are due; the right answer is not yet.
    due = scheduling.due_cards(history, START + timedelta(minutes=5))
    assert [d.name for d in due] == ["smooth_muscle+stroma", "stroma"]
    # Fixed clock, no fuzzing: the same history always gives the same schedule.
    assert scheduling.due_cards(history, START + timedelta(minutes=5)) == due
    assert scheduling.due_cards(history, START + timedelta(minutes=0.75)) == []
    assert len(scheduling.due_cards(history, START + timedelta(minutes=11))) == 3


def test_cards_answered_right_again_and_again_move_further_out():
    history = [record(0, "mucus", "mucus")]
    first = scheduling.schedule(history)[("mucus",)].due
    history += [record((first - START).total_seconds() / 60 + 1, "mucus", "mucus")]
    second = scheduling.schedule(history)[("mucus",)].due
    history += [record((second - START).total_seconds() / 60 + 1, "mucus", "mucus")]
    third = scheduling.schedule(history)[("mucus",)].due
    assert first - START < second - first < third - second


def test_practice_rounds_interleave_the_confused_pair():
    history = [record(0, "stroma", "smooth_muscle"), record(1, "mucus", "normal_mucosa")]
    due = scheduling.due_cards(history, START + timedelta(days=1))
    classes = scheduling.practice_classes(due, 12, seed=0)
    keys = [TISSUE_CLASSES[c].key for c in classes]
    assert len(keys) == 12 and {"stroma", "smooth_muscle", "mucus", "normal_mucosa"} <= set(keys)
    assert all(a != b for a, b in zip(keys, keys[1:], strict=False))


def test_compare_texts_cover_the_common_pairs_and_the_default_follows_the_history():
    for pair in [("stroma", "smooth_muscle"), ("normal_mucosa", "mucus"), ("tumour_epithelium", "normal_mucosa")]:
        assert "**" in comparisons.pair_text(*pair)
    assert "rarely confused" in comparisons.pair_text("adipose", "tumour_epithelium")
    with pytest.raises(ValueError, match="two different"):
        comparisons.pair_text("mucus", "mucus")
    assert comparisons.default_pair([]) == ("smooth_muscle", "stroma")
    assert comparisons.default_pair([record(0, "mucus", "normal_mucosa")]) == ("mucus", "normal_mucosa")
