import json

import numpy as np
import pytest
import torch

from pathgen.classifier import ClassifierConfig, TissueClassifier
from pathgen.data import NUM_CLASSES, load_split
from pathgen.metrics import expected_calibration_error, fit_temperature
from tests.conftest import ASSETS
from training import train_classifier

SHIPPED = ASSETS / "classifier"


@pytest.fixture(scope="module")
def shipped() -> TissueClassifier:
    return TissueClassifier.from_pretrained(SHIPPED)


@pytest.fixture(scope="module")
def fixture_test_split(fixture_dir):
    return load_split("test", fixture_dir)


def test_shipped_classifier_is_accurate_on_real_test_tiles(shipped, fixture_test_split):
    images, labels = fixture_test_split
    accuracy = (shipped.predict_proba(images).argmax(1) == labels).mean()
    # 162 real CRC-VAL-HE-7K tiles from another centre; the full split is reported in metrics.json.
    assert accuracy >= 0.85


def test_shipped_classifier_is_accurate_on_real_val_tiles(shipped, fixture_dir):
    images, labels = load_split("val", fixture_dir)
    # Full val accuracy is in metrics.json (0.976); 162 tiles leave a couple of points of noise.
    assert (shipped.predict_proba(images).argmax(1) == labels).mean() >= 0.90


def test_probabilities_are_calibrated_distributions(shipped, fixture_test_split):
    probabilities = shipped.predict_proba(fixture_test_split[0])
    assert probabilities.shape == (len(fixture_test_split[0]), NUM_CLASSES) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()
    assert shipped.config.temperature > 0 and shipped.config.temperature != 1.0


def test_single_image_and_features(shipped, fixture_test_split):
    image = fixture_test_split[0][0]
    assert shipped.predict_proba(image).shape == (1, NUM_CLASSES)
    features = shipped.features(fixture_test_split[0][:5])
    assert features.shape == (5, 512) and features.dtype == np.float32 and np.isfinite(features).all()


@pytest.mark.parametrize("bad", [np.zeros((4, 32, 32, 3), np.uint8), np.zeros((4, 3, 28, 28), np.uint8),
                                 np.full((2, 28, 28, 3), 1.5), np.full((2, 28, 28, 3), -1), "image"])
def test_bad_input_is_a_value_error(shipped, bad):
    with pytest.raises(ValueError, match="Expected"):
        shipped.predict_proba(bad)


def test_save_load_round_trip(tmp_path, fixture_test_split):
    torch.manual_seed(0)
    model = TissueClassifier(ClassifierConfig(temperature=1.7)).eval()
    model.save_pretrained(tmp_path, half=False)
    loaded = TissueClassifier.from_pretrained(tmp_path)
    assert loaded.config.temperature == 1.7
    np.testing.assert_allclose(loaded.predict_proba(fixture_test_split[0][:8]),
                               model.predict_proba(fixture_test_split[0][:8]), atol=1e-6)


def test_dihedral_tta_makes_predictions_orientation_free(tmp_path, fixture_test_split):
    torch.manual_seed(0)
    images = fixture_test_split[0][:6]
    turned = np.ascontiguousarray(np.rot90(images[:, :, ::-1], 1, axes=(1, 2)))
    model = TissueClassifier(ClassifierConfig(dihedral_tta=True)).eval()
    model.save_pretrained(tmp_path, half=False)
    loaded = TissueClassifier.from_pretrained(tmp_path)
    assert loaded.config.dihedral_tta
    np.testing.assert_allclose(loaded.predict_proba(turned), loaded.predict_proba(images), atol=1e-5)
    # A random-weight network is far from orientation-free on its own, so the check above can fail.
    loaded.config.dihedral_tta = False
    assert np.abs(loaded.predict_proba(turned) - loaded.predict_proba(images)).max() > 1e-3


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_classifier"):
        TissueClassifier.from_pretrained(tmp_path / "nowhere")
    TissueClassifier().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        TissueClassifier.from_pretrained(tmp_path)


def test_temperature_scaling_reduces_calibration_error():
    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(4000, NUM_CLASSES))
    # Labels drawn from softmax(logits) make these logits perfectly calibrated at temperature 1.
    labels = np.array([rng.choice(NUM_CLASSES, p=p) for p in softmax(logits)])
    overconfident = logits * 4  # same ranking, far too sharp
    temperature = fit_temperature(overconfident, labels)
    assert 3.4 < temperature < 4.6

    assert expected_calibration_error(softmax(overconfident / temperature), labels) < \
        expected_calibration_error(softmax(overconfident), labels) / 3


def test_shipped_metrics_file_matches_config(shipped):
    metrics = json.loads((SHIPPED / "metrics.json").read_text())
    assert metrics["temperature"] == pytest.approx(shipped.config.temperature)
    assert {"val", "test"} <= metrics.keys()


def test_training_checkpoints_resumes_and_writes_a_calibrated_model(tmp_path, fixture_dir, monkeypatch):
    args = train_classifier.parse_args([
        "--data-dir", str(fixture_dir), "--output-dir", str(tmp_path / "model"), "--checkpoint-dir",
        str(tmp_path / "runs"), "--epochs", "2", "--batch-size", "32", "--lr", "0.01", "--threads", "1", "--no-bf16"])
    real_epoch, epochs_run = train_classifier.train_one_epoch, []

    def interrupted_in_epoch_two(*inputs):
        epochs_run.append(inputs[6])
        if inputs[6] == 1 and epochs_run.count(1) == 1:
            raise KeyboardInterrupt
        return real_epoch(*inputs)

    monkeypatch.setattr(train_classifier, "train_one_epoch", interrupted_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train_classifier.main(args)
    assert (tmp_path / "runs" / "checkpoint.pt").is_file() and not (tmp_path / "model").exists()
    train_classifier.main(args)
    assert epochs_run == [0, 1, 1]  # the second run went straight on with epoch 2
    summary = json.loads((tmp_path / "model" / "training.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert summary["selected_epoch"] == 1 + int(np.argmax([h["val_accuracy"] for h in summary["history"]]))
    model = TissueClassifier.from_pretrained(tmp_path / "model")
    assert model.config.temperature == pytest.approx(summary["temperature"])
    assert model.config.dihedral_tta == summary["dihedral_tta"]

    longer = train_classifier.parse_args(["--data-dir", str(fixture_dir), "--checkpoint-dir",
                                          str(tmp_path / "runs"), "--epochs", "3"])
    with pytest.raises(SystemExit, match="--epochs 2"):
        train_classifier.main(longer)
