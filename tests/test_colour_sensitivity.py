import json
import shlex

import numpy as np
import pytest

from pathgen.flat_fields import moved_tiles
from tests.conftest import save_tiny_models
from training import colour_sensitivity


def test_tiles_move_onto_the_nearest_mean_colour_within_the_largest_move():
    tiles = np.stack([np.full((28, 28, 3), 100, np.uint8), np.full((28, 28, 3), 200, np.uint8)])
    tiles[0, 0, 0] = 110  # grain survives the move
    means = np.array([[103.0, 102.0, 101.0], [150.0, 150.0, 150.0]])
    placed, sizes = colour_sensitivity.at_nearest_means(tiles, means, max_move=4.0)
    own = colour_sensitivity.mean_colours(tiles[:1])[0]
    assert placed[0].astype(int).tolist() == moved_tiles(tiles[:1], (means[0] - own)[None])[0].tolist()
    assert int(placed[0, 0, 0, 0]) - int(placed[0, 1, 1, 0]) == 10
    assert (placed[1] == tiles[1]).all() and sizes[1] == 0.0  # 50 levels from the nearest mean: left as drawn
    assert sizes[0] == pytest.approx(np.abs(means[0] - own).max())


def test_real_sets_are_disjoint_and_the_reference_is_brightness_modes_pick():
    tiles = np.arange(20)[:, None, None, None] * np.ones((1, 28, 28, 3), np.uint8)
    reference, second, rest = colour_sensitivity.real_sets(tiles.astype(np.uint8), 6)
    ids = [set(part[:, 0, 0, 0].tolist()) for part in (reference, second, rest)]
    assert len(ids[0]) == len(ids[1]) == 6 and len(ids[2]) == 8 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sorted(ids[0]) == sorted(np.random.default_rng(0).choice(20, 6, replace=False).tolist())
    with pytest.raises(ValueError, match="cannot give two sets"):
        colour_sensitivity.real_sets(tiles.astype(np.uint8), 10)


def test_script_reads_real_and_generated_tiles_and_records_how(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    output = tmp_path / "colour.json"
    result = colour_sensitivity.main(colour_sensitivity.parse_args([
        "--data-dir", str(fixture_dir), "--generator", str(tmp_path / "gen"), "--count", "7", "--features",
        "classifier", "--classifier", str(tmp_path / "clf"), "--shifts", "0", "40", "--output", str(output)]))
    assert json.loads(output.read_text()) == result
    assert [row["shift"] for row in result["real_shifted"]] == [0, 40]
    rows = [*result["real_shifted"], result["generated"], result["generated_at_train_means"]]
    assert all(0.0 <= row["coverage"] <= 1.0 and 0.0 <= row["precision"] <= 1.0 for row in rows)
    assert result["train_means"] == 18 - 2 * 7 and result["class"] == "background"
    assert 0 <= result["generated_at_train_means"]["tiles_moved"] <= 7
    recorded = colour_sensitivity.parse_args(shlex.split(result["command"])[3:])
    assert recorded.count == 7 and recorded.shifts == [0, 40] and recorded.features == "classifier"
    with pytest.raises(SystemExit):
        colour_sensitivity.parse_args(["--count", "6"])
