import numpy as np
import pytest

from pathgen.data import load_split
from pathgen.memorisation import NearCopyReference


@pytest.fixture(scope="module")
def reference(fixture_dir) -> NearCopyReference:
    return NearCopyReference.load(str(fixture_dir))


def test_train_tiles_are_near_copies_and_real_held_out_tiles_rarely(reference, fixture_dir):
    train_images, train_labels = load_split("train", str(fixture_dir))
    textured = reference.thresholds > 0  # flat background tiles can have exact duplicates across splits
    assert textured.sum() >= 8
    flagged = reference.near_copies(train_images, train_labels)
    assert flagged[textured[train_labels]].all()
    val_images, val_labels = load_split("val", str(fixture_dir))
    # 1% of a class's val tiles fall below its threshold by construction: with 18 per class, at most the closest.
    flagged = reference.near_copies(val_images, val_labels)
    assert np.bincount(val_labels[flagged], minlength=9).max() <= 1


def test_a_slightly_changed_train_tile_is_still_a_near_copy_and_noise_is_not(reference, fixture_dir):
    train_images, train_labels = load_split("train", str(fixture_dir))
    index = int(np.flatnonzero(train_labels == 3)[0])  # lymphocytes: textured
    nudged = np.clip(train_images[index].astype(int) + 1, 0, 255).astype(np.uint8)[None]
    noise = np.random.default_rng(0).integers(0, 256, (1, 28, 28, 3), dtype=np.uint8)
    assert reference.near_copies(nudged, 3).tolist() == [True]
    assert reference.near_copies(noise, 3).tolist() == [False]


def test_percentile_out_of_range_is_refused(fixture_dir):
    with pytest.raises(ValueError, match="percentile"):
        NearCopyReference.load(str(fixture_dir), percentile=0.0)
    with pytest.raises(ValueError, match="percentile"):
        NearCopyReference.load(str(fixture_dir), percentile=100.0)


def test_summary_records_the_rule(reference):
    summary = reference.summary()
    assert summary["train_tiles"] == len(reference.train_images) and len(summary["thresholds"]) == 9
    assert "percentile 1.0" in summary["rule"]
