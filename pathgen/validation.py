"""Generate, classify, keep only confident matches, regenerate the rest: the quality gate for every shown tile.

An image is kept only if the calibrated classifier's top class is the requested one AND its probability
reaches the threshold. Each kept image carries one int64 seed that regenerates it exactly (`regenerate`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .checks import is_number_in, is_whole_in
from .classifier import TissueClassifier
from .data import CLASS_NAMES
from .generation import MAX_IMAGES_PER_CALL, ImageGenerator, check_generation_args
from .guided import check_examples, check_strength, wrong_class_examples

DEFAULT_THRESHOLD = 0.9
DEFAULT_BATCH_SIZE = 64
MAX_ATTEMPTS = 100
# An image seed packs (call seed, call size - 1, position in the call) so that a single int64 names one image.
_POSITION_BITS = (MAX_IMAGES_PER_CALL - 1).bit_length()
_CALL_SEED_LIMIT = 2 ** (63 - 2 * _POSITION_BITS)


@dataclass
class ValidatedBatch:
    """The accepted images of one `generate_validated` call, in the order they were accepted."""

    class_index: int
    images: np.ndarray  # uint8 [k, 28, 28, 3]
    probabilities: np.ndarray  # float32 [k, 9], calibrated
    attempts: np.ndarray  # int64 [k], the 1-based round in which each image was accepted
    seeds: np.ndarray  # int64 [k], see `regenerate`
    requested: int
    generated: int
    threshold: float
    seed: int  # the base seed used (drawn at random when None was passed), so the run can be repeated
    excluded: int = 0  # images the classifier passed but `exclude` discarded

    @property
    def accepted(self) -> int:
        return len(self.images)

    @property
    def complete(self) -> bool:
        return self.accepted == self.requested

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.generated if self.generated else 0.0


def derive_seed(*keys: int) -> int:
    """An independent seed for each key tuple, e.g. (run seed, class index), so classes never share noise."""
    return int(np.random.default_rng([int(k) for k in keys]).integers(2**63))


def generate_unfiltered(generator: ImageGenerator, class_index: int, n: int, *, run_seed: int, stream: int,
                        batch_size: int = DEFAULT_BATCH_SIZE, steps: int | None = None,
                        guidance: float | None = None, profile: str = "live",
                        on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """`n` images of one class with no classifier in the loop, in calls of at most `batch_size`.

    Call seeds derive from (run_seed, stream, class_index, start), so scripts that draw from different
    streams never see the same noise. `on_batch(size)` is called after every call (e.g. a progress bar's update).
    """
    batch_size = min(batch_size, MAX_IMAGES_PER_CALL)
    batches = []
    for start in range(0, n, batch_size):
        batches.append(generator.generate(class_index, min(batch_size, n - start),
                                          seed=derive_seed(run_seed, stream, class_index, start),
                                          steps=steps, guidance=guidance, profile=profile))
        if on_batch is not None:
            on_batch(len(batches[-1]))
    return np.concatenate(batches)


def pack_image_seed(call_seed: int, call_size: int, position: int) -> int:
    return (call_seed << 2 * _POSITION_BITS) | ((call_size - 1) << _POSITION_BITS) | position


def unpack_image_seed(image_seed: int) -> tuple[int, int, int]:
    """(call seed, call size, position) of a seed made by `pack_image_seed`."""
    mask = (1 << _POSITION_BITS) - 1
    image_seed = int(image_seed)
    return image_seed >> 2 * _POSITION_BITS, ((image_seed >> _POSITION_BITS) & mask) + 1, image_seed & mask


def regenerate(generator: ImageGenerator, class_index: int, image_seed: int, *, steps: int | None = None,
               guidance: float | None = None, profile: str = "live") -> np.ndarray:
    """The exact image [28, 28, 3] that `image_seed` names, given the same model, profile, steps and guidance."""
    call_seed, call_size, position = unpack_image_seed(image_seed)
    # The sampler's noise and batch numerics depend on the call size, so the whole call is repeated.
    return generator.generate(class_index, call_size, seed=call_seed, steps=steps, guidance=guidance,
                              profile=profile)[position]


def _check_validation_args(threshold: float, max_attempts: int, batch_size: int | None) -> None:
    if not is_number_in(threshold, 0.0, 1.0, include_low=False):
        raise ValueError(f"threshold must be a probability above 0 and at most 1, got {threshold!r}.")
    if not is_whole_in(max_attempts, 1, MAX_ATTEMPTS):
        raise ValueError(f"max_attempts must be a whole number from 1 to {MAX_ATTEMPTS}, got {max_attempts!r}.")
    if batch_size is not None and not is_whole_in(batch_size, 1, MAX_IMAGES_PER_CALL):
        raise ValueError(f"batch_size must be None or a whole number from 1 to {MAX_IMAGES_PER_CALL}, "
                         f"got {batch_size!r}.")


def _sampler(generator: ImageGenerator, classifier: TissueClassifier, class_index: int, examples: np.ndarray | None,
             strength: float | None, threshold: float) -> Callable[..., np.ndarray]:
    """`sample(n, seed=, steps=, guidance=, profile=)` of one class: unguided, or guided by checked examples."""
    if examples is None and strength is None:
        return lambda n, **kwargs: generator.generate(class_index, n, **kwargs)
    if examples is None or strength is None:
        raise ValueError("Guided generation needs both examples and strength.")
    examples, strength = check_examples(examples), check_strength(strength)
    probabilities = classifier.predict_proba(examples)
    wrong = wrong_class_examples(probabilities, class_index, threshold)
    if len(wrong):
        top = probabilities[wrong[0]].argmax()
        raise ValueError(f"{len(wrong)} of {len(examples)} examples are not {CLASS_NAMES[class_index]}: the classifier "
                         f"is sure that example {int(wrong[0])} is {CLASS_NAMES[top]}. Pick examples of the class "
                         "you ask for.")
    return lambda n, **kwargs: generator.generate_guided(examples, class_index, n, strength=strength, **kwargs)


def generate_validated(
    generator: ImageGenerator,
    classifier: TissueClassifier,
    class_index: int | str,
    n: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_attempts: int = 10,
    seed: int | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    profile: str = "live",
    progress: Callable[[float, str], None] | None = None,
    exclude: Callable[[np.ndarray, int], np.ndarray] | None = None,
    examples: np.ndarray | None = None,
    strength: float | None = None,
) -> ValidatedBatch:
    """Up to `n` images of one class that pass the classifier; fewer (complete=False) after `max_attempts` rounds.

    Round r generates only the images still missing, in calls of at most `batch_size`. `steps` and
    `guidance` default to the generator's `profile` ("live" or "bank"). `progress(fraction, message)` is called after every call.
    `exclude(images, class_index)` -> bool mask discards images the classifier passed, and they are regenerated
    like rejected ones (e.g. `NearCopyReference.near_copies`, so that no near-copy of a train tile is kept).
    With `examples` (uint8 [k, 28, 28, 3]) and `strength`, tiles are guided by them (`generate_guided`); examples that
    the classifier would accept as another class are refused with a ValueError.
    """
    # None means "the generator's default", which the generator validates itself.
    class_index = check_generation_args(class_index, n, seed, 1 if steps is None else steps,
                                        0.0 if guidance is None else guidance)
    _check_validation_args(threshold, max_attempts, batch_size)
    sample = _sampler(generator, classifier, class_index, examples, strength, threshold)
    batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
    seed = int(np.random.default_rng().integers(2**63)) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    images, probabilities, attempts, seeds = [], [], [], []
    accepted = generated = excluded = 0
    for attempt in range(1, max_attempts + 1):
        missing = n - accepted
        if missing == 0:
            break
        for start in range(0, missing, batch_size):
            size = min(batch_size, missing - start)
            call_seed = int(rng.integers(_CALL_SEED_LIMIT))
            batch = sample(size, seed=call_seed, steps=steps, guidance=guidance, profile=profile)
            batch_probabilities = classifier.predict_proba(batch)
            keep = np.flatnonzero((batch_probabilities.argmax(axis=1) == class_index)
                                  & (batch_probabilities[:, class_index] >= threshold))
            if exclude is not None and len(keep):
                kept = ~np.asarray(exclude(batch[keep], class_index), dtype=bool)
                excluded += int(len(keep) - kept.sum())
                keep = keep[kept]
            images.append(batch[keep])
            probabilities.append(batch_probabilities[keep])
            attempts.append(np.full(len(keep), attempt, dtype=np.int64))
            seeds.append(np.array([pack_image_seed(call_seed, size, int(i)) for i in keep], dtype=np.int64))
            accepted += len(keep)
            generated += size
            if progress is not None:
                # Monotone: the loop ends when either all n are accepted or the last round is done.
                done = max(accepted / n, (attempt - 1 + (start + size) / missing) / max_attempts)
                progress(min(done, 1.0), f"round {attempt}/{max_attempts}: {accepted}/{n} accepted")
    if progress is not None:
        progress(1.0, f"{accepted}/{n} accepted from {generated} generated")
    # Round 1 always runs, so every list holds at least one (possibly empty) array.
    return ValidatedBatch(
        class_index=class_index, images=np.concatenate(images), probabilities=np.concatenate(probabilities),
        attempts=np.concatenate(attempts), seeds=np.concatenate(seeds), requested=n, generated=generated,
        threshold=float(threshold), seed=seed, excluded=excluded,
    )
