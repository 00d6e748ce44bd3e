"""Comparing training runs at equal CPU time from their log.jsonl files."""

import json

import pytest

from training import training_curves


def write_log(folder, saves):
    folder.mkdir()
    lines = [{"step": 10, "loss_ema": 1.0, "train_min": 0.1}]  # a progress line without a held-out figure
    for step, minutes, geometric in saves:
        lines.append({"step": step, "train_min": minutes,
                      "held_out_x0_mse": {"0.99": 10 * geometric[0], "0.999": 10 * geometric[1]},
                      "held_out_x0_mse_geometric": {"0.99": geometric[0], "0.999": geometric[1]}})
    (folder / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_each_run_is_read_at_its_last_save_before_the_minute(tmp_path):
    small = write_log(tmp_path / "small", [(250, 4.0, (0.009, 0.010)), (500, 8.0, (0.007, 0.006))])
    big = write_log(tmp_path / "big", [(250, 11.0, (0.008, 0.009))])
    args = training_curves.parse_args([str(small), str(big), "--at-minutes", "5", "9", "--plot",
                                       str(tmp_path / "curves.png"), "--reference", "shipped=0.005"])
    rows = training_curves.main(args).splitlines()[2:]
    assert rows[0].startswith("| small | 5 | 250 | 16,000 | 4.0 | 0.99 | 0.09000 | 0.009000 |")
    assert rows[1].startswith("| small | 9 | 500 | 32,000 | 8.0 | 0.999 | 0.06000 | 0.006000 |")  # best snapshot
    assert "no save yet" in rows[2] and "no save yet" in rows[3]
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_folder_without_a_log_stops_with_a_message(tmp_path):
    with pytest.raises(SystemExit, match="checkpoint-dir"):
        training_curves.read_saves(tmp_path)
    write_log(tmp_path / "empty", [])
    with pytest.raises(SystemExit, match="no save"):
        training_curves.read_saves(tmp_path / "empty")


def test_a_reference_that_is_not_a_number_is_refused():
    assert training_curves.parse_reference("shipped=0.005264") == ("shipped", 0.005264)
    assert training_curves.parse_reference("0.01") == ("reference", 0.01)
    with pytest.raises(SystemExit, match="LABEL=VALUE"):
        training_curves.parse_reference("shipped=low")
