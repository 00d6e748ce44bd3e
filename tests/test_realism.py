"""Real-or-synthetic rounds: drawing, judging, the binomial interval, and the per-class realism figure."""

import numpy as np
import pytest

from pathgen import realism
from pathgen.data import NUM_CLASSES, TISSUE_CLASSES

LABELS = np.repeat(np.arange(NUM_CLASSES), 5)


def test_a_round_mixes_real_and_synthetic_tiles_over_the_classes():
    state = realism.new_round(LABELS, LABELS, 18, seed=0)
    sources = [s for s, _ in state.tiles]
    assert sources.count("real") == 9 and sources.count("synthetic") == 9
    assert len(set(state.labels)) == NUM_CLASSES
    assert all(LABELS[i] == label for (_, i), label in zip(state.tiles, state.labels, strict=True))
    for n in (1, realism.MAX_TILES + 1, True, 2.5):
        with pytest.raises(ValueError, match="from 2 to"):
            realism.new_round(LABELS, LABELS, n)


def test_detection_accuracy_has_an_exact_binomial_interval():
    state = realism.new_round(LABELS, LABELS, 20, seed=1)
    while not state.finished:  # always right
        state = realism.judge(state, state.current[0] == "synthetic", state.labels[state.position])
    result = realism.detection(state)
    assert result.correct == 20 and result.accuracy == 1.0 and result.tissue_correct == 20
    assert 0.83 < result.low < 0.84 and result.high == 1.0 and result.p_value < 1e-5
    assert "better than chance" in result.verdict
    with pytest.raises(ValueError, match="finished"):
        realism.judge(state, True)

    state = realism.new_round(LABELS, LABELS, 10, seed=2)
    while not state.finished:  # always says synthetic: right on exactly the synthetic half
        state = realism.judge(state, True)
    result = realism.detection(state)
    assert result.correct == 5 and result.low < 0.5 < result.high and "cannot tell" in result.verdict
    assert result.tissue_named == 0


def test_realism_by_class_and_the_most_obvious_fakes():
    counts = [{"tile_key": "bank:stroma:1", "is_synthetic": True, "shown": 10, "judged_synthetic": 9},
              {"tile_key": "bank:stroma:2", "is_synthetic": True, "shown": 10, "judged_synthetic": 3},
              {"tile_key": "real:stroma:val7", "is_synthetic": False, "shown": 4, "judged_synthetic": 1},
              {"tile_key": "bank:mucus:5", "is_synthetic": True, "shown": 2, "judged_synthetic": 2}]
    rows = {row["class"]: row for row in realism.realism_by_class(counts, tuple(c.key for c in TISSUE_CLASSES))}
    assert rows["stroma"]["synthetic_spotted"]["rate"] == 0.6 and rows["stroma"]["synthetic_spotted"]["judgements"] == 20
    low, high = rows["stroma"]["synthetic_spotted"]["ci95"]
    assert low < 0.6 < high
    assert rows["stroma"]["real_called_synthetic"]["rate"] == 0.25
    assert rows["adipose"]["synthetic_spotted"]["rate"] is None
    assert [c["tile_key"] for c in realism.most_obvious_fakes(counts)] == ["bank:stroma:1", "bank:stroma:2"]
