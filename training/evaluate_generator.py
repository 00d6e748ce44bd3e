"""Measure the shipped generator with the shipped classifier; writes every figure in assets/metrics/generator.json.

    python -m training.evaluate_generator --data-dir ../shared/data

(a) Recognisability before filtering: unfiltered generated images classified by the classifier, per-class
    precision/recall/F1 and macro averages beside paper 1's reported figures, and a confusion matrix.
(b) Acceptance rate and mean attempts per class of `generate_validated` at `--threshold`.
(c) Realism: Fréchet distance in the classifier's 512-d penultimate features between generated and real
    val images of each class, beside the distance between two disjoint real val sets of the same size (the
    floor). Val, because the classifier never trained on it, just as it never saw the generated images, and
    it comes from the same centre as train (test would add a stain shift to the floor). No Inception
    weights can be fetched offline, so this is not FID.
(d) Memorisation: each generated image's pixel L2 distance to its nearest train image, against the same
    distance for real val images; near-copies are generated images closer to a train image than 99% of
    the real val images of their class are. The shipped bank's tiles (`--bank`) are measured the same way.
(e) Texture: each tile's mean grey-level step between neighbouring pixels, real val against generated, per
    class; it shows whether generated tiles are smoother than real ones (which both (c) and (d) punish).
(f) Sample grids: real, generated and accepted images of each class side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pathgen.bank import ImageBank  # noqa: E402
from pathgen.classifier import TissueClassifier  # noqa: E402
from pathgen.data import NUM_CLASSES, TISSUE_CLASSES, add_data_arguments, load_split  # noqa: E402
from pathgen.generator import load_generator  # noqa: E402
from pathgen.memorisation import DEFAULT_PERCENTILE  # noqa: E402
from pathgen.metrics import (  # noqa: E402
    classification_report,
    frechet_distance,
    near_copy_thresholds,
    nearest_distances,
    texture_energy,
)
from pathgen.validation import (  # noqa: E402
    DEFAULT_THRESHOLD,
    ValidatedBatch,
    derive_seed,
    generate_unfiltered,
    generate_validated,
)
from training.evaluate_classifier import plot_confusion  # noqa: E402
from training.provenance import describe_model  # noqa: E402

# Seed streams, so unfiltered and validated generation never share noise.
UNFILTERED, VALIDATED = 0, 1
NEAR_COPY_TARGET = 0.01  # the project target: at most 1% of generated images are near-copies
PAPER_1 = {"source": "reported by paper 1", "macro_f1": 0.6727, "macro_precision": 0.6817, "macro_recall": 0.7111}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--bank", default="assets/bank",
                        help="Image bank whose tiles are checked for near-copies too (empty string: skip).")
    parser.add_argument("--output-dir", default="assets/metrics", help="Where generator.json and the PNGs go.")
    parser.add_argument("--per-class", type=int, default=100,
                        help="Minimum unfiltered images generated per class for (a) and (d); (c) may need more.")
    parser.add_argument("--fd-size", type=int, default=1000,
                        help="Images per set per class for (c), capped at half the class's val images.")
    parser.add_argument("--fd-dims", type=int, default=0,
                        help="Project features onto this many principal components of the real reference set "
                             "before the Fréchet distance (0: all 512 dimensions, the default because projecting "
                             "shrank the real floor more than the generated distance and made the ratio noisier).")
    parser.add_argument("--validated-per-class", type=int, default=64, help="Images requested per class for (b).")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="Acceptance threshold for (b).")
    parser.add_argument("--max-attempts", type=int, default=10, help="Regeneration rounds for (b).")
    parser.add_argument("--near-copy-percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="Percentile of real val images' nearest-train distances below which a generated "
                             "image counts as a near-copy.")
    parser.add_argument("--steps", type=int, default=None, help="Sampling steps (default: the generator's).")
    parser.add_argument("--guidance", type=float, default=None, help="Guidance scale (default: the generator's).")
    parser.add_argument("--batch-size", type=int, default=64, help="Images per generate call (64 was fastest on our 2-core CPU).")
    parser.add_argument("--grid-per-class", type=int, default=8, help="Images per group and class in samples.png.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for generation and for drawing the real sets.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    return parser.parse_args(argv)


def recognisability(classifier: TissueClassifier, generated: list[np.ndarray]) -> dict:
    labels = np.concatenate([np.full(len(images), c) for c, images in enumerate(generated)])
    predictions = classifier.predict_proba(np.concatenate(generated)).argmax(axis=1)
    report = classification_report(labels, predictions)
    report["images_per_class"] = [len(images) for images in generated]
    report["paper_1"] = PAPER_1
    report["macro_f1_minus_paper_1"] = report["macro_f1"] - PAPER_1["macro_f1"]
    return report


def acceptance(batch: ValidatedBatch) -> dict:
    return {"requested": batch.requested, "accepted": batch.accepted, "generated": batch.generated,
            "complete": batch.complete, "acceptance_rate": batch.acceptance_rate,
            "mean_attempts": float(batch.attempts.mean()) if batch.accepted else None}


def frechet(reference: np.ndarray, real: np.ndarray, generated: np.ndarray, dims: int) -> dict:
    """FD of generated and of another real set to the same real reference set, all of one size."""
    if dims:
        # Principal axes of the reference alone, so neither compared set shaped the projection.
        mean = reference.mean(axis=0)
        axes = np.linalg.svd(reference - mean, full_matrices=False)[2][:dims].T
        reference, real, generated = ((x - mean) @ axes for x in (reference, real, generated))
    generated_fd, real_fd = frechet_distance(generated, reference), frechet_distance(real, reference)
    return {"images_per_set": len(reference), "generated_vs_real": generated_fd, "real_vs_real": real_fd,
            "ratio": generated_fd / real_fd if real_fd > 0 else None}


def realism(classifier: TissueClassifier, generated: list[np.ndarray], val_images: np.ndarray, val_labels: np.ndarray,
            args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    sets = {"reference": [], "real": [], "generated": []}
    per_class = {}
    for tissue in TISSUE_CLASSES:
        indices = rng.permutation(np.flatnonzero(val_labels == tissue.index))
        size = min(args.fd_size, len(indices) // 2)
        features = {"reference": classifier.features(val_images[indices[:size]]),
                    "real": classifier.features(val_images[indices[size : 2 * size]]),
                    "generated": classifier.features(generated[tissue.index][:size])}
        per_class[tissue.key] = frechet(features["reference"], features["real"], features["generated"], args.fd_dims)
        for name, value in features.items():
            sets[name].append(value)
    pooled = {name: np.concatenate(value) for name, value in sets.items()}
    return {
        "features": "penultimate 512-d layer of the shipped classifier",
        "pca_dims": args.fd_dims or None,
        "note": "Not FID: Inception weights cannot be fetched offline. Real sets: disjoint random halves of the "
                "class's val images (same centre as train), capped at --fd-size; generated: unfiltered images.",
        "per_class": per_class,
        "overall": frechet(pooled["reference"], pooled["real"], pooled["generated"], args.fd_dims),
    }


def distance_summary(distances: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> dict:
    """Nearest-train distances of one image set; near-copies are judged against each image's class threshold."""
    if len(distances) == 0:
        return {"images": 0}
    near = distances < thresholds[labels]
    return {"images": int(len(distances)), "median": float(np.median(distances)), "min": float(distances.min()),
            "near_copy_fraction": float(near.mean()),
            "near_copy_fraction_per_class": {t.key: float(near[labels == t.index].mean())
                                             for t in TISSUE_CLASSES if (labels == t.index).any()}}


def memorisation(generated: list[np.ndarray], accepted: list[np.ndarray], bank: ImageBank | None,
                 val_images: np.ndarray, val_labels: np.ndarray, train_images: np.ndarray,
                 args: argparse.Namespace) -> tuple[dict, dict]:
    """Summary, plus the most suspicious generated images beside their nearest train images for the figure."""
    real, _ = nearest_distances(val_images, train_images)
    thresholds = near_copy_thresholds(real, val_labels, args.near_copy_percentile)
    labels = {name: np.concatenate([np.full(len(x), c) for c, x in enumerate(images)])
              for name, images in (("generated", generated), ("accepted", accepted))}
    queries = np.concatenate(generated + accepted + ([bank.images] if bank is not None else []))  # one train pass
    distances, nearest = nearest_distances(queries, train_images)
    split = len(labels["generated"])
    bank_start = split + len(labels["accepted"])
    summary = {
        "distance": "L2 between images scaled to [0, 1] (2352 values), to the nearest of all train images",
        "near_copy_rule": f"closer than percentile {args.near_copy_percentile} of the real val images of the same "
                          "class (val is not in train, so real held-out images score that percentile by construction)",
        "near_copy_fraction_target": NEAR_COPY_TARGET,
        "caveat": "pixel L2 also flags featureless tiles (flat background or debris) that resemble many train "
                  "tiles at once; look at generator_nearest_train.png before calling them copies",
        "near_copy_thresholds": {t.key: float(thresholds[t.index]) for t in TISSUE_CLASSES},
        "real_val": distance_summary(real, val_labels, thresholds),
        "generated": distance_summary(distances[:split], labels["generated"], thresholds),
        "accepted": distance_summary(distances[split:bank_start], labels["accepted"], thresholds),
    }
    if bank is not None:
        summary["bank"] = distance_summary(distances[bank_start:], bank.labels, thresholds) | {"path": args.bank}
    suspicious = np.argsort(distances[:split] / thresholds[labels["generated"]])[:12]
    pairs = {"generated": queries[suspicious], "train": train_images[nearest[suspicious]],
             "titles": [f"{TISSUE_CLASSES[labels['generated'][i]].key[:8]}\n{distances[i]:.2f}" for i in suspicious]}
    return summary, pairs


def texture(generated: list[np.ndarray], val_images: np.ndarray, val_labels: np.ndarray) -> dict:
    def quantiles(images: np.ndarray) -> dict:
        energy = texture_energy(images)
        return {"p10": float(np.percentile(energy, 10)), "median": float(np.median(energy)),
                "p90": float(np.percentile(energy, 90))}

    return {"measure": "mean absolute grey-level step between neighbouring pixels (0-255), 10th/50th/90th "
                       "percentiles per class; real: all val tiles of the class, generated: unfiltered",
            "per_class": {t.key: {"real": quantiles(val_images[val_labels == t.index]),
                                  "generated": quantiles(generated[t.index])} for t in TISSUE_CLASSES}}


def image_row(images: np.ndarray, count: int) -> np.ndarray:
    """`count` tiles side by side with 2-pixel white gaps; empty slots stay white."""
    row = np.full((28, count * 30, 3), 255, np.uint8)
    for i, image in enumerate(images[:count]):
        row[:, i * 30 : i * 30 + 28] = image
    return row


def plot_samples(real: list[np.ndarray], generated: list[np.ndarray], accepted: list[np.ndarray], count: int,
                 path: Path) -> None:
    groups = (("real (val)", real), ("generated, unfiltered", generated), ("accepted", accepted))
    figure, axes = plt.subplots(NUM_CLASSES, len(groups), figsize=(len(groups) * count * 0.5, NUM_CLASSES * 0.6),
                                squeeze=False)
    for row, tissue in enumerate(TISSUE_CLASSES):
        for col, (title, images) in enumerate(groups):
            axis = axes[row, col]
            axis.imshow(image_row(images[row], count), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=9)
            if col == 0:
                axis.set_ylabel(tissue.key, rotation=0, ha="right", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_pairs(pairs: dict, path: Path) -> None:
    count = len(pairs["titles"])
    figure, axes = plt.subplots(2, count, figsize=(count * 0.9, 2.4), squeeze=False)
    for i in range(count):
        for row, name in enumerate(("generated", "train")):
            axes[row, i].imshow(pairs[name][i], interpolation="nearest")
            axes[row, i].axis("off")
        axes[0, i].set_title(pairs["titles"][i], fontsize=7)
    figure.suptitle("Generated images closest to a train image relative to their class's real threshold (top), "
                    "their nearest train images (bottom), L2 distance", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    generator = load_generator(args.generator)
    classifier = TissueClassifier.from_pretrained(args.classifier)
    args.steps = generator.defaults.steps if args.steps is None else args.steps
    args.guidance = generator.defaults.guidance if args.guidance is None else args.guidance
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_images, _ = load_split("train", args.data_dir, args.download)
    val_images, val_labels = load_split("val", args.data_dir, args.download)

    counts = [max(args.per_class, min(args.fd_size, int((val_labels == c).sum()) // 2)) for c in range(NUM_CLASSES)]
    log(started, f"generating {sum(counts)} unfiltered images")
    generated = [generate_unfiltered(generator, c, count, run_seed=args.seed, stream=UNFILTERED,
                                 batch_size=args.batch_size, steps=args.steps, guidance=args.guidance)
                 for c, count in enumerate(counts)]
    log(started, f"generating {args.validated_per_class} validated images per class")
    batches = [generate_validated(generator, classifier, c, args.validated_per_class, threshold=args.threshold,
                                  max_attempts=args.max_attempts, seed=derive_seed(args.seed, VALIDATED, c),
                                  steps=args.steps, guidance=args.guidance) for c in range(NUM_CLASSES)]
    accepted = [batch.images for batch in batches]
    log(started, "nearest train images, classifier features")
    bank = ImageBank.load(args.bank) if args.bank else None
    memorised, pairs = memorisation(generated, accepted, bank, val_images, val_labels, train_images, args)
    metrics = {
        "generator": describe_model(args.generator) | {
            "unet": {k: v for k, v in generator.pipeline.unet.config.items() if not k.startswith("_")},
            "sampling_defaults": asdict(generator.defaults), "sampled_in_bf16": generator.bf16,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "classifier": describe_model(args.classifier) | {"config": asdict(classifier.config)},
        "settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "download", "output_dir")},
        "recognisability": recognisability(classifier, generated),
        "acceptance": {
            "threshold": args.threshold,
            "per_class": {t.key: acceptance(b) for t, b in zip(TISSUE_CLASSES, batches, strict=True)},
            "overall_acceptance_rate": sum(b.accepted for b in batches) / sum(b.generated for b in batches)},
        "realism": realism(classifier, generated, val_images, val_labels, args),
        "memorisation": memorised,
        "texture": texture(generated, val_images, val_labels),
        "figures": ["generator_confusion_matrix.png", "generator_samples.png", "generator_nearest_train.png"],
        "reproduce": "python -m training.evaluate_generator --data-dir <folder with pathmnist.npz> "
                     f"--fd-size {args.fd_size} --per-class {args.per_class} --seed {args.seed}",
    }
    recognised = metrics["recognisability"]
    plot_confusion(np.array(recognised["confusion_matrix"]),
                   f"Unfiltered generated images, classifier macro-F1 {recognised['macro_f1']:.3f}",
                   output_dir / "generator_confusion_matrix.png")
    real_examples = [val_images[val_labels == c][: args.grid_per_class] for c in range(NUM_CLASSES)]
    plot_samples(real_examples, generated, accepted, args.grid_per_class, output_dir / "generator_samples.png")
    plot_pairs(pairs, output_dir / "generator_nearest_train.png")
    metrics["wall_time_min"] = (time.time() - started) / 60  # last, so that it includes the figures
    (output_dir / "generator.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print_summary(metrics)
    return metrics


def log(started: float, message: str) -> None:
    print(f"{(time.time() - started) / 60:5.1f} min  {message}", flush=True)


def print_summary(metrics: dict) -> None:
    recognised, accepted = metrics["recognisability"], metrics["acceptance"]
    realism_overall, memorised = metrics["realism"]["overall"], metrics["memorisation"]
    print(f"(a) unfiltered: macro P/R/F1 {recognised['macro_precision']:.4f}/{recognised['macro_recall']:.4f}/"
          f"{recognised['macro_f1']:.4f} (paper 1: {PAPER_1['macro_precision']}/{PAPER_1['macro_recall']}/"
          f"{PAPER_1['macro_f1']})")
    print(f"(b) acceptance at {accepted['threshold']}: overall {accepted['overall_acceptance_rate']:.1%}; " + ", ".join(
        f"{k} {v['acceptance_rate']:.0%}" for k, v in accepted["per_class"].items()))
    print(f"(c) classifier-feature FD overall: generated {realism_overall['generated_vs_real']:.2f}, "
          f"real floor {realism_overall['real_vs_real']:.2f}, ratio {realism_overall['ratio'] or float('nan'):.2f}")
    print(f"(d) near-copies (target <= {NEAR_COPY_TARGET:.0%}): generated "
          f"{memorised['generated']['near_copy_fraction']:.2%}, "
          f"accepted {memorised['accepted'].get('near_copy_fraction', float('nan')):.2%}"
          + (f", bank {memorised['bank'].get('near_copy_fraction', float('nan')):.2%}" if "bank" in memorised else ""))
    print("(e) texture, median real / generated: " + ", ".join(
        f"{k} {v['real']['median']:.1f}/{v['generated']['median']:.1f}" for k, v in metrics["texture"]["per_class"].items()))
    print(f"wall time {metrics['wall_time_min']:.1f} min")


if __name__ == "__main__":
    main(parse_args())
