"""Measure the shipped generator with the shipped classifier; writes every figure in assets/metrics/generator.json.

    python -m training.evaluate_generator --data-dir ../shared/data

(a) Recognisability before filtering: unfiltered generated images classified by the classifier, per-class
    precision/recall/F1 and macro averages beside paper 1's reported figures, and a confusion matrix.
(b) Acceptance rate and mean attempts per class of `generate_validated` at `--threshold`.
(c) Realism, per class against real val tiles, each figure beside a second real val set of the same size (the
    floor): the Fréchet distance and k-NN precision, recall, density and coverage (k = 5, `prdc`), plus
    recognisability, for three sets: unfiltered tiles at the profile, unfiltered tiles without guidance
    (guidance 1.0, the model's own fit), and the shipped bank. All of it twice: in the classifier's 512-d
    penultimate features (the filter) and in the independent judge's (pathgen.judge, which never filters,
    tunes or selects). Val, because neither model trained on it, and it comes from the same centre as train
    (test would add a stain shift to the floor). No Inception weights can be fetched offline: not FID.
(d) Memorisation: each generated image's pixel L2 distance to its nearest train image, against the same
    distance for real val images; near-copies are generated images closer to a train image than 99% of
    the real val images of their class are. The shipped bank's tiles (`--bank`) are measured the same way.
(e) Texture: each tile's mean grey-level step between neighbouring pixels, real val against generated (and
    unguided, and the bank), per class; it shows whether generated tiles are smoother than real ones.
(f) Figures: sample grids (real, generated, accepted), the confusion matrix, the near-copy pairs, and per-class
    coverage bars of each set beside real vs real in both feature spaces (generator_coverage.png).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pathgen.bank import ImageBank  # noqa: E402
from pathgen.classifier import TissueClassifier  # noqa: E402
from pathgen.data import NUM_CLASSES, TISSUE_CLASSES, add_data_arguments, load_split  # noqa: E402
from pathgen.generation import PROFILES, load_generator  # noqa: E402
from pathgen.judge import TissueJudge  # noqa: E402
from pathgen.memorisation import DEFAULT_PERCENTILE  # noqa: E402
from pathgen.metrics import (  # noqa: E402
    classification_report,
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
from training.provenance import command_line, describe_model  # noqa: E402
from training.realism import PRDC_K, TileSets, feature_space_report, plot_coverage, split_real  # noqa: E402

# Seed streams, so that no two sets share noise (tune_sampling draws from stream 2).
UNFILTERED, VALIDATED, UNGUIDED = 0, 1, 3
UNGUIDED_SCALE = 1.0  # classifier-free guidance scale 1: the class-conditional model alone
NEAR_COPY_TARGET = 0.01  # the project target: at most 1% of generated images are near-copies
PAPER_1 = {"source": "reported by paper 1", "macro_f1": 0.6727, "macro_precision": 0.6817, "macro_recall": 0.7111}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--judge", default="assets/judge",
                        help="Independent judge folder (pathgen.judge); every realism figure is repeated in its "
                             "features (empty string: skip).")
    parser.add_argument("--bank", default="assets/bank",
                        help="Image bank measured like the generated sets: realism, texture, near-copies "
                             "(empty string: skip).")
    parser.add_argument("--output-dir", default="assets/metrics", help="Where generator.json and the PNGs go.")
    parser.add_argument("--per-class", type=int, default=100,
                        help="Minimum unfiltered images generated per class for (a) and (d); (c) may need more.")
    parser.add_argument("--fd-size", type=int, default=1000,
                        help="Images per set per class for (c) (Fréchet and k-NN figures), capped at half the "
                             "class's val images; the bank is compared at its own size per class.")
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
    parser.add_argument("--profile", choices=PROFILES, default="bank",
                        help="Sampling profile of generator_config.json whose settings apply (live: fast, for the "
                             "app; bank: quality first).")
    parser.add_argument("--steps", type=int, default=None, help="Sampling steps (default: the profile's).")
    parser.add_argument("--guidance", type=float, default=None, help="Guidance scale (default: the profile's).")
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


def realism(models: dict, sets: TileSets, args: argparse.Namespace) -> dict:
    """Section (c) in every feature space: {"classifier": ..., "judge": ...}."""
    descriptions = {"classifier": "penultimate 512-d layer of the shipped classifier (the filter)",
                    "judge": "pooled features before the last layer of the independent judge (never filters)"}
    return {name: feature_space_report(model, sets, descriptions[name], args.fd_dims) for name, model in models.items()}


def realism_summary(spaces: dict, args: argparse.Namespace) -> dict:
    """The classifier's Fréchet figures of the unfiltered set where the model card reads them."""
    return {"features": spaces["classifier"]["features"], "pca_dims": args.fd_dims or None,
            "note": "Not FID: Inception weights cannot be fetched offline. Real sets: disjoint random halves of the "
                    "class's val images (same centre as train), capped at --fd-size; generated: unfiltered images. "
                    "Every figure in both feature spaces, with k-NN figures: feature_spaces.",
            **spaces["classifier"]["generated"]["frechet"]}


def judge_description(folder: str, judge: TissueJudge) -> dict:
    training = Path(folder, "training.json")
    record = json.loads(training.read_text()) if training.is_file() else {}
    return describe_model(folder) | {"config": asdict(judge.config), "role": "reports only; never filters or selects"} \
        | {key: record.get(key) for key in ("val_accuracy", "test_accuracy", "command")}


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


def texture(groups: dict[str, list[np.ndarray]], val_images: np.ndarray, val_labels: np.ndarray) -> dict:
    def quantiles(images: np.ndarray) -> dict:
        if len(images) == 0:
            return {}
        energy = texture_energy(images)
        return {"p10": float(np.percentile(energy, 10)), "median": float(np.median(energy)),
                "p90": float(np.percentile(energy, 90))}

    return {"measure": "mean absolute grey-level step between neighbouring pixels (0-255), 10th/50th/90th "
                       "percentiles per class; real: all val tiles of the class; generated and unguided: "
                       "unfiltered; bank: the shipped bank's tiles",
            "per_class": {t.key: {"real": quantiles(val_images[val_labels == t.index])}
                          | {name: quantiles(tiles[t.index]) for name, tiles in groups.items()}
                          for t in TISSUE_CLASSES}}


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


def generate_sets(generator, classifier: TissueClassifier, counts: list[int], args: argparse.Namespace,
                  started: float) -> tuple[list, list, list]:
    """Unfiltered tiles at the profile, unfiltered tiles without guidance, and validated batches, per class."""
    def unfiltered(stream: int, guidance: float, desc: str) -> list[np.ndarray]:
        with tqdm(total=sum(counts), desc=desc, mininterval=30) as progress:
            return [generate_unfiltered(generator, c, count, run_seed=args.seed, stream=stream,
                                        batch_size=args.batch_size, steps=args.steps, guidance=guidance,
                                        profile=args.profile, on_batch=progress.update)
                    for c, count in enumerate(counts)]

    log(started, f"generating {sum(counts)} unfiltered images")
    generated = unfiltered(UNFILTERED, args.guidance, "unfiltered")
    log(started, f"generating {sum(counts)} unfiltered images without guidance")
    unguided = unfiltered(UNGUIDED, UNGUIDED_SCALE, "unguided")
    log(started, f"generating {args.validated_per_class} validated images per class")
    batches = [generate_validated(generator, classifier, c, args.validated_per_class, threshold=args.threshold,
                                  max_attempts=args.max_attempts, seed=derive_seed(args.seed, VALIDATED, c),
                                  steps=args.steps, guidance=args.guidance, profile=args.profile)
               for c in tqdm(range(NUM_CLASSES), desc="validated (classes)")]
    return generated, unguided, batches


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    generator = load_generator(args.generator)
    classifier = TissueClassifier.from_pretrained(args.classifier)
    judge = TissueJudge.from_pretrained(args.judge) if args.judge else None
    settings = generator.profiles.get(args.profile)
    args.steps = settings.steps if args.steps is None else args.steps
    # Without --guidance every class is sampled at its profile's own scale (SamplingDefaults.guidance_for).
    guidance_text = settings.describe_guidance() if args.guidance is None else f"{args.guidance:g}"
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_images, _ = load_split("train", args.data_dir, args.download)
    val_images, val_labels = load_split("val", args.data_dir, args.download)
    bank = ImageBank.load(args.bank) if args.bank else None

    counts = [max(args.per_class, min(args.fd_size, int((val_labels == c).sum()) // 2)) for c in range(NUM_CLASSES)]
    generated, unguided, batches = generate_sets(generator, classifier, counts, args, started)
    accepted = [batch.images for batch in batches]
    log(started, "nearest train images")
    memorised, pairs = memorisation(generated, accepted, bank, val_images, val_labels, train_images, args)
    log(started, "features, Fréchet and k-NN figures")
    candidates = {"generated": generated, "unguided": unguided}
    if bank is not None:
        candidates["bank"] = [bank.images[bank.labels == c] for c in range(NUM_CLASSES)]
    sets = TileSets(*split_real(val_images, val_labels, args.fd_size, args.seed), candidates=candidates)
    spaces = realism({"classifier": classifier} | ({"judge": judge} if judge is not None else {}), sets, args)
    metrics = {
        "generator": describe_model(args.generator) | {
            "unet": model_architecture(generator, args.profile),
            "class_unets": class_architectures(generator, args.profile),
            "profile": args.profile, "sampling": settings.to_dict(), "sampled_in_bf16": getattr(generator, "bf16", None),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "classifier": describe_model(args.classifier) | {"config": asdict(classifier.config)},
        "judge": judge_description(args.judge, judge) if judge is not None else None,
        "settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "download", "output_dir")},
        "recognisability": recognisability(classifier, generated),
        "acceptance": {
            "threshold": args.threshold,
            "per_class": {t.key: acceptance(b) for t, b in zip(TISSUE_CLASSES, batches, strict=True)},
            "overall_acceptance_rate": sum(b.accepted for b in batches) / sum(b.generated for b in batches)},
        "realism": realism_summary(spaces, args),
        "feature_spaces": spaces | {"sets": {"generated": f"unfiltered, profile {args.profile}, guidance {guidance_text}",
                                             "unguided": f"unfiltered, profile {args.profile}, guidance {UNGUIDED_SCALE}",
                                             "bank": f"the tiles of {args.bank}" if bank is not None else None},
                                    "prdc_k": PRDC_K},
        "memorisation": memorised,
        "texture": texture(candidates, val_images, val_labels),
        "figures": ["generator_confusion_matrix.png", "generator_samples.png", "generator_nearest_train.png",
                    "generator_coverage.png"],
        "reproduce": command_line("training.evaluate_generator", args),
    }
    write_figures(metrics, val_images, val_labels, generated, accepted, pairs, args)
    metrics["wall_time_min"] = (time.time() - started) / 60  # last, so that it includes the figures
    (output_dir / "generator.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print_summary(metrics)
    return metrics


def write_figures(metrics: dict, val_images: np.ndarray, val_labels: np.ndarray, generated: list, accepted: list,
                  pairs: dict, args: argparse.Namespace) -> None:
    output_dir = Path(args.output_dir)
    recognised = metrics["recognisability"]
    plot_confusion(np.array(recognised["confusion_matrix"]),
                   f"Unfiltered generated images, classifier macro-F1 {recognised['macro_f1']:.3f}",
                   output_dir / "generator_confusion_matrix.png")
    real_examples = [val_images[val_labels == c][: args.grid_per_class] for c in range(NUM_CLASSES)]
    plot_samples(real_examples, generated, accepted, args.grid_per_class, output_dir / "generator_samples.png")
    plot_pairs(pairs, output_dir / "generator_nearest_train.png")
    spaces = {k: v for k, v in metrics["feature_spaces"].items() if k in ("classifier", "judge")}
    plot_coverage(spaces, output_dir / "generator_coverage.png")


def model_architecture(generator, profile: str) -> dict:
    """The config of the denoiser `profile` samples with: a pixel UNet, or the LoRA backend's Stable Diffusion UNet."""
    unet = generator.unet_for(profile) if hasattr(generator, "unet_for") else generator.pipe.unet
    return unet_description(unet)


def class_architectures(generator, profile: str) -> dict:
    """{class key: its network's folder and config} for the classes `profile` samples with networks of their own; a
    list of them for a class drawn from several in equal shares."""
    settings = generator.profiles.get(profile)

    def described(folder: str) -> dict:
        return {"folder": folder} | unet_description(
            generator.pipeline_for(replace(settings, model=folder, class_models={})).unet)

    return {key: described(folders) if isinstance(folders, str) else [described(folder) for folder in folders]
            for key, folders in settings.class_models.items()}


def unet_description(unet) -> dict:
    return {k: v for k, v in unet.config.items() if not k.startswith("_")}


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
    print_realism(metrics["feature_spaces"])
    print(f"(d) near-copies (target <= {NEAR_COPY_TARGET:.0%}): generated "
          f"{memorised['generated']['near_copy_fraction']:.2%}, "
          f"accepted {memorised['accepted'].get('near_copy_fraction', float('nan')):.2%}"
          + (f", bank {memorised['bank'].get('near_copy_fraction', float('nan')):.2%}" if "bank" in memorised else ""))
    print("(e) texture, median real / generated: " + ", ".join(
        f"{k} {v['real']['median']:.1f}/{v['generated']['median']:.1f}" for k, v in metrics["texture"]["per_class"].items()))
    print(f"wall time {metrics['wall_time_min']:.1f} min")


def print_realism(spaces: dict) -> None:
    """One line per feature space and set: macro-F1, Fréchet ratio, lowest precision/recall/coverage per class."""
    for space in ("classifier", "judge"):
        if space not in spaces:
            continue
        for name in ("generated", "unguided", "bank"):
            if not spaces[space].get(name, {}).get("prdc", {}).get("summary"):
                continue  # not measured, or no class had 3 tiles
            report, f1 = spaces[space][name], spaces[space]["recognisability"][name]["macro_f1"]
            summary = report["prdc"]["summary"]
            lowest = ", ".join(f"{k} {summary[k]['min']:.2f} (real {summary[k]['real_vs_real_min']:.2f})"
                               for k in ("precision", "recall", "coverage"))
            print(f"    {space:10s} {name:9s}: macro-F1 {f1:.3f}, FD ratio "
                  f"{report['frechet']['overall']['ratio'] or float('nan'):.2f}, lowest per class: {lowest}; "
                  f"mean coverage {summary['coverage']['mean']:.2f}")


if __name__ == "__main__":
    main(parse_args())
