"""The synthetic PathMNIST export: layout, loader round trip, record, cache, guided shots."""

import json

import numpy as np
import pytest

from pathgen.classifier import TissueClassifier
from pathgen.data import NUM_CLASSES, load_split
from tests.conftest import ASSETS, FIXTURE_DIR
from training import export_synthetic
from training.synthetic_sets import draw_shots

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def export(tmp_path, *extra: str) -> tuple[dict, list[str]]:
    argv = ["--per-class", "2", "--output", str(tmp_path / "out" / "pathmnist.npz"), "--cache-dir",
            str(tmp_path / "cache"), "--data-dir", str(FIXTURE_DIR), *extra]
    return export_synthetic.main(export_synthetic.parse_args(argv)), argv


@pytest.fixture(scope="module")
def guided(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("guided")
    record, argv = export(tmp_path, "--guided-by-split", "test", "--shots", "2", "--strength", "0.3",
                          "--val-per-class", "1", "--seed", "3")
    return tmp_path, record, argv


def test_export_round_trips_through_numpy_and_the_loader(guided):
    tmp_path, record, _ = guided
    with np.load(tmp_path / "out" / "pathmnist.npz") as data:
        assert set(data.files) == {"train_images", "train_labels", "val_images", "val_labels"}
        assert data["train_images"].shape == (2 * NUM_CLASSES, 28, 28, 3) and data["train_images"].dtype == np.uint8
        assert data["train_labels"].shape == (2 * NUM_CLASSES, 1)
        raw_train = data["train_images"]
    images, labels = load_split("train", tmp_path / "out")
    np.testing.assert_array_equal(images, raw_train)
    np.testing.assert_array_equal(np.bincount(labels, minlength=NUM_CLASSES), [2] * NUM_CLASSES)
    val_images, val_labels = load_split("val", tmp_path / "out")
    assert len(val_images) == NUM_CLASSES and sorted(val_labels) == list(range(NUM_CLASSES))
    # Only validated tiles: the shipped classifier accepts each as its label.
    probabilities = TissueClassifier.from_pretrained(ASSETS / "classifier").predict_proba(images)
    assert np.all(probabilities.argmax(1) == labels) and np.all(probabilities.max(1) >= record["threshold"])


def test_record_names_models_settings_shots_and_acceptance(guided):
    tmp_path, record, _ = guided
    assert json.loads(json.dumps(record)) == json.loads((tmp_path / "out" / "pathmnist.json").read_text())
    assert record["generator"]["sha256"] and record["classifier"]["sha256"]
    assert record["sampling"]["profile"] == "live" and "steps" in record["sampling"]
    test_labels = load_split("test", FIXTURE_DIR)[1]
    shots = record["guidance"]["shot_indices"]
    assert shots == draw_shots(test_labels, [2] * NUM_CLASSES, 3).tolist()
    acceptance = record["splits"]["train"]["acceptance"]
    assert len(acceptance) == NUM_CLASSES
    assert all(a["accepted"] == 2 and a["generated"] >= 2 and 0 < a["acceptance_rate"] <= 1 for a in acceptance.values())
    assert record["command"].startswith("python -m training.export_synthetic --per-class 2")


def test_rerun_reads_the_cache_and_repeats_the_export(guided):
    tmp_path, _, argv = guided
    first = np.load(tmp_path / "out" / "pathmnist.npz")["train_images"]
    chunks = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.npz")}
    argv = [a if a != str(tmp_path / "out" / "pathmnist.npz") else str(tmp_path / "again.npz") for a in argv]
    export_synthetic.main(export_synthetic.parse_args(argv))
    np.testing.assert_array_equal(np.load(tmp_path / "again.npz")["train_images"], first)
    assert chunks == {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.npz")}  # none rewritten


def test_unguided_export_train_only(tmp_path):
    record, _ = export(tmp_path, "--profile", "live", "--per-class", "1")
    assert record["guidance"] is None and set(record["splits"]) == {"train"}
    with np.load(tmp_path / "out" / "pathmnist.npz") as data:
        assert set(data.files) == {"train_images", "train_labels"}


def test_workers_make_the_same_tiles_as_one_process(tmp_path):
    one, _ = export(tmp_path / "one", "--per-class", "1")
    two, _ = export(tmp_path / "two", "--per-class", "1", "--workers", "2")
    assert two["workers"] == 2 and two["splits"]["train"]["acceptance"] == one["splits"]["train"]["acceptance"]
    with np.load(tmp_path / "one" / "out" / "pathmnist.npz") as a, np.load(tmp_path / "two" / "out" / "pathmnist.npz") as b:
        np.testing.assert_array_equal(a["train_images"], b["train_images"])
        np.testing.assert_array_equal(a["train_labels"], b["train_labels"])


def test_a_worker_error_stops_the_export_with_its_message(tmp_path):
    # At threshold 1.0 no tile can pass, so the first class a worker takes gives up after its empty chunks.
    with pytest.raises(RuntimeError, match="no tile passed the classifier"):
        export(tmp_path, "--per-class", "1", "--workers", "2", "--threshold", "1.0", "--max-attempts", "1")


@pytest.mark.parametrize("extra", [["--per-class", "0"], ["--workers", "0"], ["--guided-by-split", "test", "--strength", "0"],
                                   ["--guided-by-split", "test", "--shots", "0"], ["--output", "x.txt"]])
def test_bad_arguments_stop_with_a_message(tmp_path, extra):
    with pytest.raises(SystemExit):
        export(tmp_path, *extra)


def test_unfiltered_export_of_named_classes_keeps_every_tile_as_drawn(tmp_path):
    record, _ = export(tmp_path, "--unfiltered", "--classes", "background", "mucus", "--per-class", "3",
                       "--threshold", "1.0")  # a threshold no tile passes: ignored when unfiltered
    with np.load(tmp_path / "out" / "pathmnist.npz") as data:
        assert data["train_images"].shape == (6, 28, 28, 3)
        assert data["train_labels"][:, 0].tolist() == [1, 1, 1, 4, 4, 4]
    assert record["threshold"] is None and "unfiltered" in record["note"]
    assert record["classes"] == ["Background", "Mucus"]
    assert all(a["generated"] == a["accepted"] == 3 for a in record["splits"]["train"]["acceptance"].values())


@pytest.mark.parametrize("extra", [["--unfiltered", "--exclude-near-copies"], ["--unfiltered", "--guided-by-split", "test"],
                                   ["--classes", "no-such-tissue"]])
def test_unfiltered_and_class_arguments_that_cannot_work_stop_with_a_message(tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as stopped:
        export(tmp_path, *extra)
    assert stopped.value.code not in (0, None)
