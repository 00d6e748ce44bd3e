"""benchmarks.training_step times real optimiser steps of the generator's recipe per execution mode."""

import json

import pytest

from benchmarks import training_step, utils


@pytest.mark.usefixtures("one_torch_thread")
def test_benchmark_times_each_mode_against_eager(tmp_path):
    output = tmp_path / "steps.json"
    report = training_step.main(training_step.parse_args([
        "--channels", "32", "32", "32", "--batch-size", "4", "--warmup", "1", "--steps", "2",
        "--modes", "eager", "channels-last", "--no-bf16", "--output", str(output)]))
    assert set(report["modes"]) == {"eager", "channels-last"}
    assert report["modes"]["eager"]["ratio_to_eager"] == 1.0
    channels_last = report["modes"]["channels-last"]
    assert channels_last["median_s_per_step"] >= channels_last["min_s_per_step"] > 0
    assert channels_last["ratio_to_eager"] == pytest.approx(
        channels_last["median_s_per_step"] / report["modes"]["eager"]["median_s_per_step"])
    assert report["parameters"] > 0 and report["bf16"] is False
    assert {"cpu_model", "cpu_capability", "native_bf16", "isa_limits"} <= set(report)
    assert json.loads(output.read_text()) == report
    assert report["command"].startswith("python -m benchmarks.training_step --channels 32 32 32")


def test_benchmark_refuses_an_unknown_mode():
    with pytest.raises(SystemExit):
        training_step.parse_args(["--modes", "fastest"])


def test_a_timing_under_an_instruction_set_cap_says_so(monkeypatch):
    # A plain dict, not the process environment: setting the real variable could cap oneDNN for later tests.
    monkeypatch.setattr(utils.os, "environ", {"ONEDNN_MAX_CPU_ISA": "AVX2", "HOME": "/root"})
    assert utils.cpu_description()["isa_limits"] == {"ONEDNN_MAX_CPU_ISA": "AVX2"}
    monkeypatch.setattr(utils.os, "environ", {})
    assert utils.cpu_description()["isa_limits"] == {}
