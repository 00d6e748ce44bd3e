import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pathgen.data import NUM_CLASSES, load_split
from pathgen.judge import CONFIG_NAME, WEIGHTS_NAME, JudgeConfig, TissueJudge
from training import train_judge

TINY = ["--dims", "8", "8", "16", "16", "--depths", "0", "1", "1", "1", "--batch-size", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fixture_dir):
    """Two tiny epochs on the fixture, the way the shipped judge is trained."""
    folder = tmp_path_factory.mktemp("judge")
    args = train_judge.parse_args(["--data-dir", str(fixture_dir), "--epochs", "2", "--output-dir",
                                   str(folder / "judge"), "--checkpoint-dir", str(folder / "runs"), *TINY])
    return train_judge.main(args), folder, args


def test_training_writes_a_loadable_judge_with_provenance(trained, fixture_dir):
    summary, folder, args = trained
    record = json.loads((folder / "judge" / "training.json").read_text())
    assert record["selected_epoch"] in (1, 2) and len(record["history"]) == 2
    assert 0 <= record["val_accuracy"] <= 1 and 0 <= record["test_accuracy"] <= 1
    assert record["command"].startswith("python -m training.train_judge ")
    assert train_judge.parse_args(record["command"].split()[3:]) == args
    assert record["data_sha256"] and record["model"]["sha256"][WEIGHTS_NAME]
    judge = TissueJudge.from_pretrained(folder / "judge")
    assert judge.config.dims == [8, 8, 16, 16]
    images, _ = load_split("val", str(fixture_dir))
    features = judge.features(images[:10])
    assert features.shape == (10, 16) and features.dtype == np.float32 and np.isfinite(features).all()
    np.testing.assert_array_equal(features, judge.features(images[:10]))  # eval mode: no randomness
    probabilities = judge.predict_proba(images[:10])
    assert probabilities.shape == (10, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    stored = load_file(folder / "judge" / WEIGHTS_NAME)
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}


def test_training_resumes_from_its_checkpoint(trained, fixture_dir):
    summary, folder, _ = trained
    args = train_judge.parse_args(["--data-dir", str(fixture_dir), "--epochs", "2", "--output-dir",
                                   str(folder / "again"), "--checkpoint-dir", str(folder / "runs"), *TINY])
    resumed = train_judge.main(args)  # both epochs are done: nothing to train, the same judge comes out
    assert resumed["history"] == summary["history"] and resumed["val_accuracy"] == summary["val_accuracy"]
    # A time budget ends the run at an epoch end and exports the best epoch so far.
    budget = train_judge.parse_args(["--data-dir", str(fixture_dir), "--epochs", "3", "--max-minutes", "0",
                                     "--output-dir", str(folder / "budget"), "--checkpoint-dir", str(folder / "b"), *TINY])
    stopped = train_judge.main(budget)
    assert stopped["epochs_trained"] == 1 and stopped["epochs_planned"] == 3 and stopped["selected_epoch"] == 1
    with pytest.raises(SystemExit, match="--epochs 2"):
        train_judge.main(train_judge.parse_args(["--data-dir", str(fixture_dir), "--epochs", "3", "--checkpoint-dir",
                                                 str(folder / "runs"), "--output-dir", str(folder / "x"), *TINY]))


def test_missing_and_corrupt_judges_name_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m training.train_judge"):
        TissueJudge.from_pretrained(tmp_path / "absent")
    TissueJudge(JudgeConfig(dims=[8, 8, 16, 16], depths=[0, 1, 1, 1])).save_pretrained(tmp_path)
    weights = tmp_path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt.*python -m training.train_judge"):
        TissueJudge.from_pretrained(tmp_path)
    TissueJudge(JudgeConfig(dims=[8, 8, 16, 16], depths=[0, 1, 1, 1])).save_pretrained(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"dims": [8, 8, 16, 32], "depths": [0, 1, 1, 1]}))
    with pytest.raises(ValueError, match="incompatible"):  # weights of another shape
        TissueJudge.from_pretrained(tmp_path)


def test_judge_refuses_bad_images():
    judge = TissueJudge(JudgeConfig(dims=[8, 8, 16, 16], depths=[0, 1, 1, 1]))
    with pytest.raises(ValueError, match="28, 28, 3"):
        judge.features(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        judge.predict_proba(torch.rand(2, 28, 28, 3).numpy())
