import json
import shlex

import numpy as np
import pytest

from pathgen.data import load_split
from pathgen.flat_fields import (
    blend_to_colours,
    frequent_colours,
    nearest_colours,
    shift_to_colours,
    snap_to_colours,
)
from pathgen.generation import load_generator
from tests.conftest import save_tiny_models
from training import fit_flat_fields
from training.cli import class_train_tiles


def test_the_candidate_whose_shares_are_nearest_train_wins_and_ties_go_to_the_smaller():
    chosen, errors = fit_flat_fields.choose_candidate(
        [0.1, 0.3], {(0,): [0.0, 0.0], (3,): [0.1, 0.2], (5,): [0.2, 0.4], (4,): [0.1, 0.2]})
    assert chosen == (3,) and errors[(0,)] == pytest.approx(0.2) and errors[(5,)] == pytest.approx(0.1)
    assert fit_flat_fields.choose_candidate([0.1], {(7, 4): [0.2], (7, 2): [0.1], (5, 3): [0.3]})[0] == (7, 2)
    assert fit_flat_fields.choose_candidate([0.5], {(7, 2): [0.25], (5, 3): [0.75], (5, 4): [0.25]})[0] == (5, 3)


def test_fit_writes_the_class_flat_field_and_a_record_and_refits_the_same(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    generator = tmp_path / "gen"
    argv = ["--data-dir", str(fixture_dir), "--generator", str(generator), "--count", "4", "--colours", "3",
            "--tolerances", "16", "--write"]
    record = fit_flat_fields.main(fit_flat_fields.parse_args(argv))
    images, labels = load_split("train", str(fixture_dir))
    colours = frequent_colours(images[labels == 1], 3)
    assert record["colours"] == colours.tolist() and record["train_tiles"] == int((labels == 1).sum())
    pixels = images[labels == 1].reshape(-1, 3)
    assert record["colour_shares"] == [round(float((pixels == c).all(axis=1).mean()), 5) for c in colours]
    assert record["colour_shares"] == sorted(record["colour_shares"], reverse=True) and record["colour_shares"][0] > 0
    assert str(record["tolerance"]) == min(record["errors"], key=lambda t: (record["errors"][t], int(t)))
    assert record["flat_field"] == {"colours": colours.tolist(), "tolerance": 16,
                                    "distance_map": record["distance_maps"]["16"]}
    loaded = load_generator(generator)
    distance_map = record["distance_maps"]["16"]
    assert loaded.profiles.bank.flat_field_for(1) == {"colours": colours.tolist(), "tolerance": 16,
                                                      "distance_map": distance_map}
    assert distance_map == sorted(distance_map) and len(distance_map) == 17
    assert loaded.profiles.live.flat_fields == {} and loaded.profiles.bank.flat_field_for(0) is None
    assert json.loads((generator / "flat_fields.json").read_text())["bank/background"] == record
    refit = fit_flat_fields.main(fit_flat_fields.parse_args(shlex.split(record["command"])[3:]))
    assert {k: v for k, v in refit.items() if k not in ("generator", "command")} == \
        {k: v for k, v in record.items() if k not in ("generator", "command")}
    plain = load_generator(generator)
    plain.profiles.bank.flat_fields = {}
    unsnapped = plain.generate(1, 4, seed=2024, profile="bank")
    snapped = loaded.generate(1, 4, seed=2024, profile="bank")
    assert not np.array_equal(snapped, unsnapped)
    np.testing.assert_array_equal(snapped, snap_to_colours(unsnapped, colours, 16, distance_map))
    args = fit_flat_fields.parse_args(argv)
    np.testing.assert_array_equal(fit_flat_fields.unsnapped_tiles(args, 1, "background"), unsnapped)


def test_a_blend_fit_writes_the_blend_it_chose(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    generator = tmp_path / "gen"
    argv = ["--data-dir", str(fixture_dir), "--generator", str(generator), "--count", "4", "--colours", "2",
            "--tolerances", "3", "6", "--blend-window", "3", "--blend-starts", "0", "4", "--write"]
    record = fit_flat_fields.main(fit_flat_fields.parse_args(argv))
    assert set(record["errors"]) == {"3/0", "6/0", "6/4"} and "distance_maps" not in record
    best = min(record["errors"], key=lambda key: (record["errors"][key], tuple(map(int, key.split("/")))))
    tolerance, start = map(int, best.split("/"))
    spec = {"colours": record["colours"], "tolerance": tolerance, "blend": {"start": float(start), "window": 3}}
    assert record["flat_field"]["blend"] == {"start": start, "window": 3}
    loaded = load_generator(generator)
    assert loaded.profiles.bank.flat_field_for(1) == spec
    unsnapped = fit_flat_fields.unsnapped_tiles(fit_flat_fields.parse_args(argv), 1, "background")
    np.testing.assert_array_equal(loaded.generate(1, 4, seed=2024, profile="bank"),
                                  blend_to_colours(unsnapped, np.array(record["colours"], dtype=np.uint8), start,
                                                   tolerance, 3))


def test_a_shift_fit_writes_the_offset_map_it_chose_and_summarises_the_offsets(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    generator = tmp_path / "gen"
    argv = ["--data-dir", str(fixture_dir), "--generator", str(generator), "--count", "4", "--colours", "2",
            "--tolerances", "8", "16", "--min-share", "0.3", "--shift", "--write"]
    record = fit_flat_fields.main(fit_flat_fields.parse_args(argv))
    assert set(record["errors"]) == set(record["offset_maps"]) == {"8", "16"} and "distance_maps" not in record
    tolerance = int(min(record["errors"], key=lambda key: (record["errors"][key], int(key))))
    offset_map = record["offset_maps"][str(tolerance)]
    assert len(offset_map) == tolerance + 1 and offset_map == sorted(offset_map)
    assert record["flat_field"] == {"colours": record["colours"], "tolerance": tolerance,
                                    "shift": {"min_share": 0.3, "offset_map": offset_map}}
    assert set(record["offsets"]) == {"train", "generated", "shifted"}
    assert record["offsets"]["generated"]["tiles"] == 4 and 0 <= record["offsets"]["train"]["with_field"] <= 1
    loaded = load_generator(generator)
    assert loaded.profiles.bank.flat_field_for(1)["shift"] == {"min_share": 0.3, "offset_map": offset_map}
    unshifted = fit_flat_fields.unsnapped_tiles(fit_flat_fields.parse_args(argv), 1, "background")
    np.testing.assert_array_equal(loaded.generate(1, 4, seed=2024, profile="bank"),
                                  shift_to_colours(unshifted, np.array(record["colours"], dtype=np.uint8), tolerance,
                                                   0.3, offset_map))


def test_a_shift_fit_with_a_clearance_writes_the_train_clearance_and_applies_it(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    generator = tmp_path / "gen"
    argv = ["--data-dir", str(fixture_dir), "--generator", str(generator), "--count", "4", "--colours", "2",
            "--tolerances", "8", "--min-share", "0.3", "--shift", "--clearance-percentile", "50", "--write"]
    args = fit_flat_fields.parse_args(argv)
    record = fit_flat_fields.main(args)
    _, class_tiles = class_train_tiles(args)
    clearance = fit_flat_fields.train_clearance(class_tiles, 50, 2024)
    assert record["clearance"]["distance"] == clearance > 0 and record["clearance"]["percentile"] == 50
    assert 0 <= record["clearance"]["tiles_moved"] <= 4
    assert set(record["clearance"]["within_clearance_of_a_train_tile"]) == {"shifted", "cleared"}
    shift = load_generator(generator).profiles.bank.flat_field_for(1)["shift"]
    assert shift["clearance"] == clearance and record["flat_field"]["shift"] == shift
    unshifted = fit_flat_fields.unsnapped_tiles(args, 1, "background")
    np.testing.assert_array_equal(load_generator(generator).generate(1, 4, seed=2024, profile="bank"),
                                  shift_to_colours(unshifted, np.array(record["colours"], dtype=np.uint8), 8, 0.3,
                                                   shift["offset_map"], clearance))


def test_the_train_clearance_is_a_percentile_of_half_to_half_nearest_distances():
    black_white = np.stack([np.zeros((28, 28, 3), np.uint8), np.full((28, 28, 3), 255, np.uint8)])
    assert fit_flat_fields.train_clearance(black_white, 1, seed=0) == pytest.approx(np.sqrt(28 * 28 * 3))
    # Four tiles in two pairs of twins, 1 grey level apart: the nearest is a twin or the other pair's tile.
    pairs = np.stack([np.full((28, 28, 3), v, dtype=np.uint8) for v in (10, 10, 11, 11)])
    one_level = np.sqrt(28 * 28 * 3) / 255
    for seed in range(4):
        assert fit_flat_fields.train_clearance(pairs, 100, seed) in (0.0, pytest.approx(one_level, rel=1e-12))
        assert fit_flat_fields.train_clearance(pairs, 50, seed) == fit_flat_fields.train_clearance(pairs, 50, seed)


def test_the_offset_map_gives_generated_tiles_the_train_offsets():
    colours = np.array([(200, 200, 200)], dtype=np.uint8)
    at = [np.full((28, 28, 3), 200 + d, dtype=np.uint8) for d in range(7)]
    train = np.stack([at[0], at[0], at[1], at[1]])
    generated = np.stack([at[4], at[4], at[6], at[6]])
    nearest = [(tiles, nearest_colours(tiles, colours)) for tiles in (train, generated)]
    offset_map = fit_flat_fields.fit_offset_map(nearest, colours, 6, 0.5)
    assert offset_map[4] < 1 <= offset_map[6] <= 1.5 and offset_map == sorted(offset_map)
    summary = fit_flat_fields.offset_summary(generated, colours, 6, 0.5)
    assert summary["with_field"] == 1 and summary["offset_quartiles"] == [4.0, 5.0, 6.0]
    assert summary["glass_within_1_of_median"] == 1.0


@pytest.mark.parametrize("argv", [["--colours", "0"], ["--colours", "17"], ["--tolerances", "17"],
                                  ["--measure-tolerances", "-1"], ["--min-share", "0"], ["--class", "tumor"],
                                  ["--blend-window", "2"], ["--blend-window", "11"],
                                  ["--blend-window", "3", "--tolerances", "2", "--blend-starts", "2"],
                                  ["--blend-window", "3", "--blend-starts", "-1", "2"],
                                  ["--shift", "--blend-window", "3"], ["--clearance-percentile", "1"],
                                  ["--shift", "--clearance-percentile", "101"]])
def test_bad_fit_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        fit_flat_fields.parse_args(argv)
