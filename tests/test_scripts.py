"""The scripts that write assets/ run end to end on the fixture, and what they write is what the app reads."""

import json

import numpy as np

from pathgen.classifier import TissueClassifier
from pathgen.data import DATA_CITATION, NUM_CLASSES, load_split
from pathgen.storage import Storage
from tests.conftest import ASSETS
from training import evaluate_classifier, export_real_examples, realism_report
from ui.services import _read_real, stored_real_probabilities


def test_export_real_examples_writes_what_the_app_loads(tmp_path, fixture_dir):
    output = tmp_path / "real_examples.npz"
    export_real_examples.main(export_real_examples.parse_args(
        ["--data-dir", str(fixture_dir), "--output", str(output), "--per-class", "5"]))
    images, labels, indices, attribution = _read_real(output)
    assert np.bincount(labels, minlength=NUM_CLASSES).tolist() == [5] * NUM_CLASSES
    val_images, val_labels = load_split("val", fixture_dir)
    assert np.array_equal(images, val_images[indices]) and np.array_equal(labels, val_labels[indices])
    assert DATA_CITATION in attribution and "CC BY 4.0" in attribution
    classifier = TissueClassifier.from_pretrained(ASSETS / "classifier")
    stored = stored_real_probabilities(output, ASSETS / "classifier", len(images))
    assert np.allclose(stored, classifier.predict_proba(images), atol=1e-5)
    # Another classifier's weights: the stored view is not used.
    other = tmp_path / "other"
    classifier.save_pretrained(other, half=False)
    assert stored_real_probabilities(output, other, len(images)) is None


def test_the_shipped_real_examples_hold_64_val_tiles_per_class():
    images, labels, indices, attribution = _read_real(ASSETS / "real_examples.npz")
    assert np.bincount(labels, minlength=NUM_CLASSES).min() >= 64
    assert stored_real_probabilities(ASSETS / "real_examples.npz", ASSETS / "classifier", len(images)) is not None
    assert len(set(indices.tolist())) == len(indices) and "CC BY 4.0" in attribution


def test_evaluate_classifier_writes_metrics_on_the_fixture(tmp_path, fixture_dir):
    args = evaluate_classifier.parse_args(["--data-dir", str(fixture_dir), "--output-dir", str(tmp_path)])
    evaluate_classifier.main(args)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.8 < metrics["test"]["accuracy"] <= 1.0 and (tmp_path / "confusion_matrix.png").is_file()


def test_realism_report_turns_stored_counts_into_the_per_class_figure(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    storage = Storage.from_url(url)
    for judged in (True, True, True, False):
        storage.record_realism_judgement("bank:stroma:11", True, judged)
    storage.record_realism_judgement("real:stroma:val3", False, True)
    storage.close()
    output = tmp_path / "realism.json"
    report = realism_report.main(realism_report.parse_args(
        ["--database-url", url, "--output", str(output), "--min-shown", "2"]))
    assert json.loads(output.read_text()) == report
    stroma = next(row for row in report["per_class"] if row["class"] == "stroma")
    assert stroma["synthetic_spotted"]["rate"] == 0.75 and stroma["real_called_synthetic"]["rate"] == 1.0
    assert report["most_spotted_bank_tiles"][0]["tile_key"] == "bank:stroma:11"
    assert url not in report["command"]  # a database URL may hold a password
