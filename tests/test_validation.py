import numpy as np
import pytest
import torch

from pathgen.classifier import TissueClassifier
from pathgen.generation import MAX_IMAGES_PER_CALL
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet
from pathgen.memorisation import NearCopyReference
from pathgen.validation import generate_unfiltered, generate_validated, regenerate, unpack_image_seed

STEPS = 2  # random weights: image quality is irrelevant, only the loop's bookkeeping is tested


@pytest.fixture(scope="module")
def models() -> tuple[PixelDiffusionGenerator, TissueClassifier]:
    torch.manual_seed(0)
    shape = UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8)
    generator = PixelDiffusionGenerator(build_unet(shape), dict(build_noise_scheduler().config))
    return generator, TissueClassifier().eval()


@pytest.fixture(scope="module")
def reachable(models) -> tuple[int, float]:
    """A class the random classifier often predicts, and a threshold about half of its predictions pass."""
    generator, classifier = models
    probabilities = classifier.predict_proba(generator.generate(0, 32, seed=99, steps=STEPS))
    class_index = int(np.bincount(probabilities.argmax(1)).argmax())
    confident = probabilities[probabilities.argmax(1) == class_index, class_index]
    return class_index, float(np.median(confident))


def test_every_returned_image_passes_the_classifier(models, reachable):
    generator, classifier = models
    class_index, threshold = reachable
    batch = generate_validated(generator, classifier, class_index, 6, threshold=threshold, max_attempts=20, seed=3,
                               steps=STEPS)
    assert batch.complete and batch.accepted == 6 and batch.requested == 6
    assert batch.images.shape == (6, 28, 28, 3) and batch.images.dtype == np.uint8
    assert batch.generated > 6 and batch.acceptance_rate == pytest.approx(6 / batch.generated)
    assert batch.attempts.max() > 1, "threshold at the median should need a second round"
    assert ((batch.attempts >= 1) & (batch.attempts <= 20)).all()
    again = classifier.predict_proba(batch.images)
    np.testing.assert_allclose(again, batch.probabilities, atol=1e-5)
    assert (again.argmax(1) == class_index).all()
    assert (again[:, class_index] >= threshold - 1e-5).all()
    for image, image_seed in zip(batch.images[:2], batch.seeds[:2], strict=True):
        np.testing.assert_array_equal(regenerate(generator, class_index, image_seed, steps=STEPS), image)


def test_impossible_threshold_stops_after_the_attempt_cap(models, reachable):
    generator, classifier = models
    class_index = (reachable[0] + 1) % 9  # rarely predicted, and never with probability 1
    reports = []
    batch = generate_validated(generator, classifier, class_index, 4, threshold=1.0, max_attempts=3, seed=0,
                               steps=STEPS, progress=lambda fraction, message: reports.append(fraction))
    assert not batch.complete and batch.accepted == 0 and batch.generated == 4 * 3
    assert batch.images.shape == (0, 28, 28, 3) and batch.probabilities.shape == (0, 9) and len(batch.seeds) == 0
    assert reports == sorted(reports) and reports[-1] == 1.0


def test_same_seed_same_images(models, reachable):
    generator, classifier = models
    class_index, threshold = reachable
    kwargs = dict(threshold=threshold, max_attempts=5, steps=STEPS, batch_size=4)
    a = generate_validated(generator, classifier, class_index, 3, seed=11, **kwargs)
    b = generate_validated(generator, classifier, class_index, 3, seed=11, **kwargs)
    c = generate_validated(generator, classifier, class_index, 3, seed=12, **kwargs)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert a.generated == b.generated and not np.array_equal(a.seeds, c.seeds)
    assert all(unpack_image_seed(s)[1] <= 4 for s in a.seeds)


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_index=9), "Unknown tissue class"),
    (dict(class_index="tumor"), "Unknown tissue class"),
    (dict(n=0), "n must be"),
    (dict(n=MAX_IMAGES_PER_CALL + 1), "n must be"),
    (dict(threshold=0.0), "threshold"),
    (dict(threshold=1.5), "threshold"),
    (dict(threshold=float("nan")), "threshold"),
    (dict(max_attempts=0), "max_attempts"),
    (dict(max_attempts=101), "max_attempts"),
    (dict(max_attempts=2.0), "max_attempts"),
    (dict(seed=-1), "seed"),
    (dict(seed="1"), "seed"),
    (dict(batch_size=0), "batch_size"),
    (dict(steps=0), "steps"),
])
def test_bad_arguments_are_rejected(models, kwargs, match):
    generator, classifier = models
    arguments = dict(class_index=0, n=2) | kwargs
    with pytest.raises(ValueError, match=match):
        generate_validated(generator, classifier, arguments.pop("class_index"), arguments.pop("n"), **arguments)


def test_excluded_images_are_regenerated_and_counted(models, reachable):
    generator, classifier = models
    class_index, threshold = reachable
    kwargs = dict(threshold=threshold, max_attempts=20, seed=5, steps=STEPS, batch_size=4)
    plain = generate_validated(generator, classifier, class_index, 4, **kwargs)
    # The plain run's first image stands in for a train tile; the same seed makes it again and it must go.
    reference = NearCopyReference(train_images=plain.images[:1], thresholds=np.full(9, 0.1))
    guarded = generate_validated(generator, classifier, class_index, 4, exclude=reference.near_copies, **kwargs)
    assert plain.excluded == 0 and guarded.excluded == 1
    assert guarded.complete
    assert not reference.near_copies(guarded.images, class_index).any()
    assert not any(np.array_equal(image, plain.images[0]) for image in guarded.images)
    # Everything else the first call kept is kept again: only the excluded image changed the run.
    first_call = [s for s in plain.seeds[1:] if unpack_image_seed(s)[0] == unpack_image_seed(plain.seeds[0])[0]]
    assert set(first_call) <= set(guarded.seeds.tolist())


def test_unfiltered_reports_each_call_and_keeps_its_images(models):
    generator, _ = models
    sizes = []
    reported = generate_unfiltered(generator, 2, 5, run_seed=3, stream=0, batch_size=2, steps=2, on_batch=sizes.append)
    assert sizes == [2, 2, 1]
    silent = generate_unfiltered(generator, 2, 5, run_seed=3, stream=0, batch_size=2, steps=2)
    assert reported.shape == (5, 28, 28, 3) and np.array_equal(reported, silent)
