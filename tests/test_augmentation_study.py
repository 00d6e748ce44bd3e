"""The augmentation study end to end on a tiny configuration of the fixture."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import FIXTURE_DIR
from training import augmentation_study
from training.classifier_recipe import batch_indices

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_study_runs_end_to_end(tmp_path):
    argv = ["--data-dir", str(FIXTURE_DIR), "--shot-counts", "3", "1", "1", "3", "1", "1", "1", "1", "3",
            "--synthetic-per-class", "2", "--tstr-per-class", "2", "--seeds", "0", "1", "--steps", "2",
            "--batch-size", "8", "--train-limit", "54", "--strength", "0.3", "--threshold", "0.5", "--runs-dir", str(tmp_path / "runs"),
            "--output", str(tmp_path / "augmentation.json"), "--plot", str(tmp_path / "augmentation.png")]
    report = augmentation_study.main(augmentation_study.parse_args(argv))
    assert report == json.loads((tmp_path / "augmentation.json").read_text())
    assert (tmp_path / "augmentation.png").stat().st_size > 0
    design = report["design"]
    assert design["shots"] == 15 and design["held_out_test_tiles"] == 162 - 15
    assert design["recipe"]["bf16"] is False and report["cpu"]["threads"] == 1
    assert set(report["arms"]) == {"a", "b", "c", "d", "e_synthetic", "e_real", "reference"}
    assert report["runs"]["b"]["train_tiles"] == 15 + 18 and report["runs"]["e_real"]["train_tiles"] == 18
    for arm in report["arms"].values():
        assert 0 <= arm["held_out_test"]["accuracy"]["mean"] <= 1 and arm["held_out_test"]["accuracy"]["sd"] is not None
    gain = report["gains"]["c - a"]["accuracy"]
    assert len(gain["per_seed"]) == 2 and gain["ci95"][0] <= gain["mean"] <= gain["ci95"][1]
    assert set(report["tstr_ratio"]) == {"val", "held_out_test"}
    assert report["generated"]["guided"]["acceptance"]["Adipose tissue"]["accepted"] == 2
    tables = augmentation_study.markdown_tables(report)
    reference = report["arms"]["reference"]["held_out_test"]["accuracy"]
    assert f"| reference: all of train | 54 | {reference['mean']:.3f} ± {reference['sd']:.3f} |" in tables
    assert f"| c - a | {gain['mean']:+.3f} [{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}] |" in tables
    printed = augmentation_study.main(augmentation_study.parse_args(["--print-report", str(tmp_path / "augmentation.json")]))
    assert printed == report
    # A rerun finds both generated sets in the cache.
    cached = sorted(p.name for p in (tmp_path / "runs" / "sets").iterdir())
    assert [name.split("-")[0] for name in cached] == ["guided", "unguided"]


def tiny_argv(tmp_path, *extra: str) -> list[str]:
    return ["--data-dir", str(FIXTURE_DIR), "--shot-counts", "3", "1", "1", "3", "1", "1", "1", "1", "3",
            "--synthetic-per-class", "1", "--tstr-per-class", "1", "--seeds", "0", "1", "--steps", "1",
            "--batch-size", "4", "--train-limit", "27", "--strength", "0.3", "--threshold", "0.5",
            "--runs-dir", str(tmp_path / "runs"), "--output", str(tmp_path / "augmentation.json"),
            "--plot", str(tmp_path / "augmentation.png"), *extra]


def test_study_resumes_from_its_finished_runs(tmp_path, monkeypatch, capsys):
    out_of_time = augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path, "--segment-minutes", "0")))
    assert out_of_time is None and not (tmp_path / "augmentation.json").exists()
    # The arms that need no generator come first, and nothing was generated before they finished.
    assert "after 0 of 8 runs of arms a, d, e_real, reference" in capsys.readouterr().out
    assert not (tmp_path / "runs" / "sets").exists()
    report = augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path)))
    stored = sorted((tmp_path / "runs" / "results").glob("*.json"))
    assert len(stored) == 14
    trained = []
    real_train = augmentation_study.train
    monkeypatch.setattr(augmentation_study, "train", lambda *a: trained.append(a[-1]) or real_train(*a))
    stored[0].unlink()  # one run lost: only that one is trained again
    again = augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path)))
    assert len(trained) == 1
    # Training is seeded, so the retrained run scores as before (only its wall time differs).
    assert again["arms"] == report["arms"] and again["gains"] == report["gains"]
    # Another recipe is another run, not a reuse of these.
    augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path, "--lr", "0.05")))
    assert len(trained) == 1 + 14


def test_arms_split_across_processes_make_one_report(tmp_path, monkeypatch, capsys):
    trained = []
    real_train = augmentation_study.train
    monkeypatch.setattr(augmentation_study, "train", lambda *a: trained.append(a[-1]) or real_train(*a))
    real_only = augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path, "--arms", "a", "d", "e_real", "reference")))
    assert real_only is None and not (tmp_path / "augmentation.json").exists()
    assert "the report needs every arm" in capsys.readouterr().out
    assert len(trained) == 8 and not (tmp_path / "runs" / "sets").exists()
    augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path, "--arms", "b", "c", "e_synthetic")))
    assert len(trained) == 14 and (tmp_path / "runs" / "sets").is_dir()
    report = augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path)))
    assert len(trained) == 14, "the full run reuses both processes' runs"
    assert set(report["arms"]) == set(augmentation_study.ARM_ORDER)


def test_batches_cover_every_tile_before_repeating():
    batches = list(batch_indices(10, 5, 4, torch.Generator().manual_seed(0)))
    assert all(len(b) == 4 for b in batches)
    first_pass = np.concatenate(batches)[:8]
    assert len(set(first_pass.tolist())) == 8
    assert [len(b) for b in batch_indices(3, 2, 8, torch.Generator())] == [3, 3]


def test_unguided_arms_do_not_generate_the_guided_set(tmp_path):
    assert augmentation_study.main(augmentation_study.parse_args(tiny_argv(tmp_path, "--arms", "b", "e_synthetic"))) is None
    assert [p.name.split("-")[0] for p in (tmp_path / "runs" / "sets").iterdir()] == ["unguided"]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "runs" / "results").iterdir()) == ["b", "b", "e_synthetic",
                                                                                              "e_synthetic"]
