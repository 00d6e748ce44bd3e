import numpy as np
import pytest

from pathgen.data import (
    NUM_CLASSES,
    TISSUE_CLASSES,
    DataNotFoundError,
    check_images,
    class_indices,
    class_keys,
    load_split,
    resolve_class,
    resolve_data_dir,
)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_fixture_loads_through_medmnist(fixture_dir, split):
    images, labels = load_split(split, fixture_dir)
    assert images.shape == (18 * NUM_CLASSES, 28, 28, 3)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert np.bincount(labels, minlength=NUM_CLASSES).tolist() == [18] * NUM_CLASSES
    assert images.std() > 10  # real tissue, not blank arrays


def test_data_dir_comes_from_environment(fixture_dir):
    assert resolve_data_dir() == fixture_dir
    images, _ = load_split("val")
    assert len(images) == 18 * NUM_CLASSES


def test_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(DataNotFoundError, match="pathmnist.npz") as error:
        load_split("train", tmp_path)
    assert "--download" in str(error.value) and str(tmp_path) in str(error.value)


def test_unknown_split_rejected(fixture_dir):
    with pytest.raises(ValueError, match="split"):
        load_split("training", fixture_dir)


def test_classes_are_in_medmnist_order_with_descriptions():
    import medmnist

    official = medmnist.INFO["pathmnist"]["label"]
    assert len(TISSUE_CLASSES) == len(official) == 9
    assert [c.index for c in TISSUE_CLASSES] == list(range(9))
    assert TISSUE_CLASSES[0].key == "adipose" and "lymph" in TISSUE_CLASSES[3].key
    assert all(len(c.description) > 60 for c in TISSUE_CLASSES)


@pytest.mark.parametrize("ref,expected", [(0, 0), ("mucus", 4), ("Smooth muscle", 5), ("8", 8), (np.int64(3), 3)])
def test_resolve_class_accepts_index_key_and_name(ref, expected):
    assert resolve_class(ref).index == expected


@pytest.mark.parametrize("ref", [9, -1, "tumor", None, 2.0, True])
def test_resolve_class_rejects_unknown(ref):
    with pytest.raises(ValueError, match="Unknown tissue class"):
        resolve_class(ref)


def test_class_keys_and_indices_keep_order_once_and_default_to_every_class():
    assert class_keys(["stroma", "Background", 0, "stroma"]) == ["stroma", "background", "adipose"]
    assert class_keys(None) == class_keys([]) == []
    assert class_indices(["stroma", "background"]) == [7, 1]
    assert class_indices(None) == class_indices([]) == list(range(NUM_CLASSES))
    with pytest.raises(ValueError, match="Unknown tissue class"):
        class_keys(["background", "tumor"])


def test_check_images_shapes_and_ranges():
    single = np.zeros((28, 28, 3), np.uint8)
    assert check_images(single).shape == (1, 28, 28, 3)
    assert check_images(np.full((2, 28, 28, 3), 255.0)).dtype == np.uint8
    for bad in (np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 3, 28, 28), np.uint8),
                np.full((1, 28, 28, 3), 0.5), np.full((1, 28, 28, 3), 300), np.zeros((0, 28, 28, 3), np.uint8)):
        with pytest.raises(ValueError, match="Expected"):
            check_images(bad)
