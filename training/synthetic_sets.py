"""Validated synthetic sets, shared by export_synthetic and augmentation_study: few-shot draws from a real
split, and per-class generation in chunks cached on disk, so that an interrupted or repeated run only
generates what is missing.

A cache folder is named by a hash of everything that fixes its tiles (model hashes, sampling profile,
guidance examples, strength, threshold, seed); each chunk file also records how many tiles it was asked
for, because a validated call's tiles depend on its size.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathgen.classifier import TissueClassifier
from pathgen.data import CLASS_NAMES, NUM_CLASSES
from pathgen.generation import ImageGenerator, load_generator
from pathgen.guided import wrong_class_examples
from pathgen.memorisation import NearCopyReference
from pathgen.validation import derive_seed, generate_unfiltered, generate_validated
from training.provenance import describe_model

CHUNK = 512
EMPTY_CHUNKS = 3  # chunks in a row with no accepted tile before a class is given up
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}  # so that the splits of one export never share noise


def draw_shots(labels: np.ndarray, counts: Sequence[int], seed: int) -> np.ndarray:
    """Sorted indices of `counts[c]` tiles of each class c, drawn without replacement."""
    rng = np.random.default_rng(seed)
    picks = []
    for c, count in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if count > len(pool):
            raise ValueError(f"{CLASS_NAMES[c]}: asked for {count} shots, the split has {len(pool)}.")
        picks.append(rng.choice(pool, size=count, replace=False))
    return np.sort(np.concatenate(picks)).astype(np.int64)


@dataclass
class SetSettings:
    """Everything that fixes the tiles of a set, apart from the models."""

    profile: str = "live"
    threshold: float | None = 0.9  # None: unfiltered, no classifier in the loop
    max_attempts: int = 10
    seed: int = 0
    split: str = "train"
    strength: float | None = None  # None: unguided
    shot_split: str | None = None
    shot_indices: tuple[int, ...] = ()
    near_copies_excluded: bool = False


def cache_key(generator_dir: str | Path, classifier_dir: str | Path, settings: SetSettings, profile: dict) -> str:
    models = [describe_model(generator_dir)["sha256"], describe_model(classifier_dir)["sha256"]]
    text = json.dumps({"models": models, "settings": asdict(settings), "profile": profile}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ClassResult:
    images: np.ndarray
    generated: int
    refused_shots: list[int]

    def summary(self) -> dict:
        accepted = len(self.images)
        return {"accepted": accepted, "generated": self.generated,
                "acceptance_rate": accepted / self.generated if self.generated else 0.0,
                "refused_shots": self.refused_shots}


def usable_shots(classifier: TissueClassifier, shots: np.ndarray, class_index: int, threshold: float
                 ) -> tuple[np.ndarray, list[int]]:
    """The shots the validation loop accepts as guides, and the positions of those it refuses (confidently
    another class); a labelled shot is not the user's claim, so it is set aside rather than stopping the run."""
    refused = wrong_class_examples(classifier.predict_proba(shots), class_index, threshold)
    kept = np.delete(shots, refused, axis=0)
    if not len(kept):
        raise ValueError(f"{CLASS_NAMES[class_index]}: the classifier is sure every shot is another class.")
    return kept, [int(i) for i in refused]


def generate_chunk(generator: ImageGenerator, classifier: TissueClassifier, class_index: int, n: int,
                   settings: SetSettings, chunk: int, shots: np.ndarray | None, exclude: Callable | None
                   ) -> tuple[np.ndarray, int]:
    """One chunk's tiles and how many were generated for them: validated by the classifier, or as drawn when
    `settings.threshold` is None."""
    seed = derive_seed(settings.seed, SPLIT_STREAMS[settings.split], class_index, chunk)
    if settings.threshold is None:
        images = generate_unfiltered(generator, class_index, n, run_seed=seed, stream=0, profile=settings.profile)
        return images, n
    batch = generate_validated(generator, classifier, class_index, n, threshold=settings.threshold,
                               max_attempts=settings.max_attempts, profile=settings.profile, exclude=exclude, seed=seed,
                               examples=shots, strength=settings.strength if shots is not None else None)
    return batch.images, batch.generated


def synthesize_class(generator: ImageGenerator, classifier: TissueClassifier, class_index: int, n: int,
                     settings: SetSettings, cache_dir: Path, shots: np.ndarray | None = None,
                     exclude: Callable | None = None, progress: tqdm | None = None) -> ClassResult:
    """`n` tiles of one class (validated unless `settings.threshold` is None), reading finished chunks from
    `cache_dir` and writing new ones."""
    refused: list[int] = []
    if shots is not None:
        shots, refused = usable_shots(classifier, shots, class_index, settings.threshold)
    images, generated, chunk, empty = [], 0, 0, 0
    while sum(map(len, images)) < n:
        wanted = min(CHUNK, n - sum(map(len, images)))
        path = cache_dir / f"class{class_index}_chunk{chunk}.npz"
        cached = np.load(path) if path.is_file() else None
        if cached is None or int(cached["requested"]) != wanted:
            chunk_images, chunk_generated = generate_chunk(generator, classifier, class_index, wanted, settings, chunk,
                                                           shots, exclude)
            empty = 0 if len(chunk_images) else empty + 1
            if empty == EMPTY_CHUNKS:
                raise RuntimeError(f"{CLASS_NAMES[class_index]}: no tile passed the classifier in {EMPTY_CHUNKS} chunks "
                                   "in a row; lower --threshold, or check the model and the shots.")
            cache_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp.npz")
            np.savez(partial, images=chunk_images, generated=chunk_generated, requested=wanted)
            partial.replace(path)  # never leave a half-written chunk behind
            cached = np.load(path)
        images.append(cached["images"])
        generated += int(cached["generated"])
        chunk += 1
        if progress is not None:
            progress.update(len(images[-1]))
    return ClassResult(np.concatenate(images)[:n], generated, refused)


def synthesize_set(generator: ImageGenerator, classifier: TissueClassifier, per_class: int, settings: SetSettings,
                   cache_dir: Path, shots_by_class: dict[int, np.ndarray] | None = None,
                   exclude: Callable | None = None, desc: str = "synthetic", classes: Sequence[int] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, dict]:
    """uint8 [len(classes) * per_class, 28, 28, 3], int64 labels, and per-class acceptance (keyed by class name);
    every class unless `classes` (indices) names some."""
    classes = range(NUM_CLASSES) if classes is None else classes
    images, labels, stats = [], [], {}
    with tqdm(total=per_class * len(classes), desc=desc, mininterval=10) as progress:
        for c in classes:
            shots = None if shots_by_class is None else shots_by_class[c]
            result = synthesize_class(generator, classifier, c, per_class, settings, cache_dir, shots, exclude, progress)
            images.append(result.images)
            labels.append(np.full(len(result.images), c, dtype=np.int64))
            stats[CLASS_NAMES[c]] = result.summary()
    return np.concatenate(images), np.concatenate(labels), stats


@dataclass
class ModelSources:
    """What a worker process needs to load the models (and the near-copy reference) itself."""

    generator_dir: str
    classifier_dir: str
    data_dir: str | None = None
    download: bool = False


class _QueueProgress:
    """Stands in for a tqdm bar inside a worker: each update goes to the parent's bar."""

    def __init__(self, updates: queue.Queue) -> None:
        self.updates = updates

    def update(self, n: int) -> None:
        self.updates.put(n)


def _fill_class(sources: ModelSources, class_index: int, n: int, settings: SetSettings, cache_dir: Path,
                shots: np.ndarray | None, updates: queue.Queue) -> None:
    torch.set_num_threads(1)  # one core per worker; the workers together use the machine
    generator = load_generator(sources.generator_dir)
    classifier = TissueClassifier.from_pretrained(sources.classifier_dir)
    exclude = None
    if settings.near_copies_excluded:
        exclude = NearCopyReference.load(sources.data_dir, download=sources.download).near_copies
    synthesize_class(generator, classifier, class_index, n, settings, cache_dir, shots, exclude,
                     _QueueProgress(updates))


def fill_cache_in_parallel(sources: ModelSources, per_class: int, settings: SetSettings, cache_dir: Path,
                           workers: int, shots_by_class: dict[int, np.ndarray] | None = None,
                           desc: str = "synthetic", classes: Sequence[int] | None = None) -> None:
    """Generate every class's missing chunks into `cache_dir`, one class at a time per worker process.

    Each chunk's seed depends only on the settings, the class and the chunk, so the tiles are the ones a
    single process would make; `synthesize_set` then reads the whole set from the cache.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    classes = range(NUM_CLASSES) if classes is None else classes
    context = multiprocessing.get_context("spawn")  # fork would copy the parent's torch threads and state
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        updates = manager.Queue()
        futures = [pool.submit(_fill_class, sources, c, per_class, settings, cache_dir,
                               None if shots_by_class is None else shots_by_class[c], updates)
                   for c in classes]
        with tqdm(total=per_class * len(classes), desc=f"{desc}, {workers} workers", mininterval=10) as progress:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=1, return_when=FIRST_EXCEPTION)
                failed = [future for future in done if future.exception() is not None]
                if failed:  # stop here with the worker's own message, without running the classes still queued
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise failed[0].exception()
                while not updates.empty():
                    progress.update(updates.get())
