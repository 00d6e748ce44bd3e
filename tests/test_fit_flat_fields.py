import json
import shlex

import numpy as np
import pytest

from pathgen.data import load_split
from pathgen.flat_fields import frequent_colours, snap_to_colours
from pathgen.generation import load_generator
from tests.conftest import save_tiny_models
from training import fit_flat_fields


def test_the_tolerance_whose_shares_are_nearest_train_wins_and_ties_go_to_the_smaller():
    chosen, errors = fit_flat_fields.choose_tolerance([0.1, 0.3], {0: [0.0, 0.0], 3: [0.1, 0.2], 5: [0.2, 0.4], 4: [0.1, 0.2]})
    assert chosen == 3 and errors[0] == pytest.approx(0.2) and errors[5] == pytest.approx(0.1)


def test_fit_writes_the_class_flat_field_and_a_record_and_refits_the_same(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    generator = tmp_path / "gen"
    argv = ["--data-dir", str(fixture_dir), "--generator", str(generator), "--count", "4", "--colours", "3",
            "--tolerances", "16", "--write"]
    record = fit_flat_fields.main(fit_flat_fields.parse_args(argv))
    images, labels = load_split("train", str(fixture_dir))
    colours = frequent_colours(images[labels == 1], 3)
    assert record["colours"] == colours.tolist() and record["train_tiles"] == int((labels == 1).sum())
    assert str(record["tolerance"]) == min(record["errors"], key=lambda t: (record["errors"][t], int(t)))
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


@pytest.mark.parametrize("argv", [["--colours", "0"], ["--colours", "17"], ["--tolerances", "17"],
                                  ["--measure-tolerances", "-1"], ["--min-share", "0"], ["--class", "tumor"]])
def test_bad_fit_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        fit_flat_fields.parse_args(argv)
