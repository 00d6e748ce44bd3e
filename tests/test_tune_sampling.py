import json

import pytest
import torch

from pathgen.classifier import TissueClassifier
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet, load_generator
from training import tune_sampling


def test_choice_is_the_fastest_pair_within_tolerance_of_the_best():
    results = [{"steps": 12, "guidance": 3.0, "macro_f1": 0.90, "images_per_second": 10.0},
               {"steps": 10, "guidance": 3.0, "macro_f1": 0.895, "images_per_second": 12.0},
               {"steps": 6, "guidance": 3.0, "macro_f1": 0.80, "images_per_second": 20.0}]
    assert tune_sampling.choose(results, tolerance=0.01)["steps"] == 10
    assert tune_sampling.choose(results, tolerance=0.0)["steps"] == 12
    assert tune_sampling.choose(results, tolerance=0.2)["steps"] == 6


def test_sweep_measures_every_setting_and_writes_the_choice_to_the_generator(tmp_path):
    torch.manual_seed(0)
    shape = UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8)
    PixelDiffusionGenerator(build_unet(shape), dict(build_noise_scheduler().config)).save_pretrained(tmp_path / "gen")
    TissueClassifier().eval().save_pretrained(tmp_path / "clf")
    args = tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"),
                                     "--steps", "1", "2", "--guidance", "1", "2.5", "--per-class", "3",
                                     "--guidance-intervals", "0:1", "0:.5",
                                     "--batch-size", "2", "--output", str(tmp_path / "sweep.json"),
                                     "--write-defaults"])
    summary = tune_sampling.main(args)
    assert [(r["steps"], r["guidance"], r["guidance_interval"]) for r in summary["results"]] == [
        (steps, guidance, interval) for steps in (1, 2) for guidance in (1.0, 2.5) for interval in ([0, 1], [0, 0.5])]
    for result in summary["results"]:
        assert 0.0 <= result["min_class_f1"] <= result["macro_f1"] <= 1.0 and result["images_per_second"] > 0
    recorded = json.loads((tmp_path / "sweep.json").read_text())
    assert recorded["chosen"] == summary["chosen"]
    command = recorded["command"].split()
    assert command[:3] == ["python", "-m", "training.tune_sampling"]
    assert tune_sampling.parse_args(command[3:]) == args
    defaults = load_generator(tmp_path / "gen").defaults
    assert (defaults.steps, defaults.guidance) == (summary["chosen"]["steps"], summary["chosen"]["guidance"])
    assert list(defaults.guidance_interval) == summary["chosen"]["guidance_interval"]


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--guidance-intervals", "0.8:0.2"],
                                   ["--guidance-intervals", "half"], ["--guidance-intervals", "0:1.5"]])
def test_bad_flags_are_refused(flags):
    with pytest.raises(SystemExit):
        tune_sampling.parse_args(flags)
