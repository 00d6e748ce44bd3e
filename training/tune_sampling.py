"""Choose the generator's default sampling steps, guidance scale, guidance interval, solver and noise spacing from
measurements.

    python -m training.tune_sampling --steps 10 12 --guidance 3 4 --guidance-intervals 0:1 0:0.75 --write-defaults

For every (steps, guidance, interval, solver, noise spacing) setting: `--per-class` unfiltered images per class, judged by the shipped
classifier (paper 1's measure: macro-F1 and the weakest class's F1), and the raw generation speed in
batches of `--batch-size`. The noise comes from a seed stream that `evaluate_generator` never uses, so the
evaluation afterwards is not run on the very images the choice was made on.

With `--near-copies` (needs the train and val splits) every setting's near-copies of train tiles are counted
too, by `evaluate_generator`'s rule: closer to a train tile than `--near-copy-percentile` of the real val
tiles of the class. With `--texture` (needs the train split) every setting's median texture per class is set
beside the median of the train tiles of that class; its worst relative error over the eight tissue classes
(background is nearly flat, so a relative error there means little) is the setting's texture error. The
reference is train, not val: `evaluate_generator` measures texture against val, and what chooses must not be
what reports.

With `--coverage` (needs the train split) every setting's k-NN coverage (k = 5, Naeem et al. 2020) is measured
per class in the classifier's features against `--per-class` train tiles of the class drawn with `--seed`; the
setting's coverage is the mean over the classes. Train again, and the classifier rather than the independent
judge: `evaluate_generator` reports coverage against val in both feature spaces, and the judge never chooses.

The rule narrows the settings down in six steps: (1) those whose weakest class reaches `--min-class-f1`
(all, if none does); (2) with `--near-copies`, those within `--near-copy-tolerance` of the fewest
near-copies among (1); (3) with `--texture`, those within `--texture-tolerance` of the smallest texture
error among (2); (4) with `--coverage`, those within `--coverage-tolerance` of the highest coverage among (3);
(5) those within `--tolerance` of the best macro-F1 among (4); (6) the fastest of (5). Without (2) the rule
can trade variety for speed, which on our weights it did; without (3) it can trade fine texture for
recognisability, which strong guidance does; without (4) it can trade the range of appearance for
recognisability, which guidance does too. `--write-defaults`
stores the choice in the generator folder's generator_config.json, which `generate()` uses when steps or
guidance are not given. Guidance intervals (`SamplingDefaults.guidance_interval`) exist for the
pixel-diffusion backend only; `--solvers` (`SamplingDefaults.solver`) and `--noise-spacings`
(`SamplingDefaults.noise_spacing`; without it, the profile's own) apply to both.

With `--frechet` (needs the train split) every setting's Fréchet distance per class is measured in the
classifier's features against `--frechet-reference` train tiles of the class (a seeded draw apart from
coverage's); the per-class rule can then prefer the scales whose tiles lie closest to train as a whole, not only
those that reach most of its neighbourhoods. Train and the classifier again, for the reasons above.

With `--class-guidance` the chosen setting also gets a guidance scale per class (`SamplingDefaults.class_guidance`),
picked among the `--guidance` values measured at that setting by `training.class_guidance`'s rule;
`--recall-tolerance` and `--frechet-tolerance` add that rule's recall and distance steps. `--results SWEEP.json`
applies the rule to the figures of an earlier run instead of measuring again; several sweeps of the same generator
and settings at different seeds are pooled first (`training.sweep_pooling`), and the spread of their figures
between seeds is printed, so tolerances can be set above it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import (
    CLASS_NAMES,
    NUM_CLASSES,
    TISSUE_CLASSES,
    add_data_arguments,
    load_split,
    per_class_indices,
)
from pathgen.generation import (
    EVERY_STEP,
    GENERATOR_CONFIG_NAME,
    MAX_IMAGES_PER_CALL,
    NOISE_SPACINGS,
    PROFILES,
    SOLVERS,
    SamplingDefaults,
    SamplingProfiles,
    load_generator,
    read_generator_config,
    write_sampling_defaults,
)
from pathgen.generator import PixelDiffusionGenerator
from pathgen.memorisation import DEFAULT_PERCENTILE, NearCopyReference
from pathgen.metrics import (
    classification_report,
    frechet_distance,
    on_principal_axes,
    precision_recall_density_coverage,
    texture_energy,
)
from pathgen.validation import generate_unfiltered
from training.class_guidance import ROUNDING, choose_class_guidance, narrowed
from training.provenance import command_line, describe_model
from training.sweep_pooling import between_sweep_spread, pooled_results

TUNING_STREAM = 2  # evaluate_generator draws from streams 0 (unfiltered) and 1 (validated)
# With --results nothing is measured, so these flags would only misstate what the earlier sweep did; its own
# command, recorded beside ours, says that.
MEASURING_FLAGS = ("classifier", "steps", "guidance", "guidance_intervals", "solvers", "noise_spacings",
                   "discriminator_guidance",
                   "per_class", "batch_size", "near_copy_percentile", "frechet_reference", "frechet_dims",
                   "data_dir", "download", "seed", "threads")
# Pooled sweeps must agree on these; their settings and figures are checked by training.sweep_pooling.
SAME_MEASUREMENT = ("generator", "classifier", "profile", "per_class", "near_copy_percentile", "frechet_reference",
                    "frechet_dims")


class Setting(NamedTuple):
    """One combination of the swept flags; a noise spacing of None keeps the profile's own."""

    steps: int
    guidance: float
    interval: str
    solver: str
    noise_spacing: str | None
    discriminator_guidance: float


def interval_bounds(text: str) -> tuple[float, float]:
    """"LOW:HIGH" -> (low, high), checked as SamplingDefaults checks it."""
    low, high = (float(bound) for bound in text.split(":"))
    return SamplingDefaults(guidance_interval=(low, high)).guidance_interval


def interval_flag(bounds: tuple[float, float]) -> str:
    return "{}:{}".format(*bounds)


def guidance_interval_flag(text: str) -> str:
    """The --guidance-intervals type: a valid "LOW:HIGH", spelled canonically so the recorded command repeats it."""
    try:
        return interval_flag(interval_bounds(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH with 0 <= LOW <= HIGH <= 1, got {text!r}") from error


def discriminator_weight(text: str) -> float:
    """The --discriminator-guidance type: a weight SamplingDefaults accepts."""
    try:
        return SamplingDefaults(discriminator_guidance=float(text)).discriminator_guidance
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings axes a sweep tries every combination of."""
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 10, 12], help="Step counts to try.")
    parser.add_argument("--guidance", type=float, nargs="+", default=[2.0, 3.0, 4.0], help="Guidance scales to try.")
    parser.add_argument("--guidance-intervals", type=guidance_interval_flag, nargs="+", default=[interval_flag(EVERY_STEP)],
                        help="LOW:HIGH noise-level windows (t / T, 1 = pure noise) in which guidance is applied; "
                             "0:1 guides every step.")
    parser.add_argument("--solvers", nargs="+", choices=SOLVERS, default=[SOLVERS[0]],
                        help="DPM-Solver++ variants to try: the deterministic ODE solver, or its SDE form, which adds "
                             "fresh (seeded) noise at every step.")
    parser.add_argument("--noise-spacings", nargs="+", choices=NOISE_SPACINGS, default=None,
                        help="Noise-level spacings to try: evenly spaced timesteps ending at the schedule's last "
                             "(trailing), or Karras-spaced noise levels, whose final steps are small (default: the "
                             "profile's own only).")
    parser.add_argument("--discriminator-guidance", type=discriminator_weight, nargs="+", default=[0.0],
                        help="Discriminator-guidance weights to try (pixel-diffusion generators with a discriminator/ "
                             "folder, from training.train_discriminator); 0 samples the model alone.")


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """The figures the rule may use beside macro-F1, and how far from the best each may fall."""
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="A setting counts as good if its macro-F1 is at most this far below the best one's.")
    parser.add_argument("--min-class-f1", type=float, default=0.85,
                        help="Prefer settings whose weakest class reaches this F1 (issue 3's per-class floor).")
    parser.add_argument("--near-copies", action=argparse.BooleanOptionalAction, default=False,
                        help="Also count each setting's near-copies of train tiles and let the rule use them "
                             "(reads the train and val splits from --data-dir).")
    parser.add_argument("--near-copy-tolerance", type=float, default=0.01,
                        help="With --near-copies, a setting stays in the running if its near-copy fraction is at "
                             "most this far above the fewest.")
    parser.add_argument("--near-copy-percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="Percentile of real val tiles' nearest-train distances below which a tile is a near-copy.")
    parser.add_argument("--texture", action=argparse.BooleanOptionalAction, default=False,
                        help="Also measure each setting's median texture per class against the train tiles' and let "
                             "the rule use its worst tissue class (reads the train split from --data-dir).")
    parser.add_argument("--texture-tolerance", type=float, default=0.03,
                        help="With --texture, a setting stays in the running if its worst relative texture error is "
                             "at most this far above the smallest.")
    parser.add_argument("--coverage", action=argparse.BooleanOptionalAction, default=False,
                        help="Also measure each setting's k-NN coverage of train tiles per class (classifier "
                             "features) and let the rule use its mean (reads the train split from --data-dir).")
    parser.add_argument("--coverage-tolerance", type=float, default=0.03,
                        help="With --coverage, a setting stays in the running if its mean coverage is at most this "
                             "far below the highest.")
    parser.add_argument("--recall-tolerance", type=float, default=None,
                        help="With --coverage and --class-guidance, a class's scale stays in the running if the class's "
                             "k-NN recall of train tiles is at most this far below its highest (default: recall is "
                             "not a step of the per-class rule).")
    parser.add_argument("--frechet", action=argparse.BooleanOptionalAction, default=False,
                        help="Also measure each setting's Fréchet distance per class to train tiles (classifier "
                             "features; reads the train split from --data-dir).")
    parser.add_argument("--frechet-reference", type=int, default=1000,
                        help="With --frechet, train tiles per class in the reference the distances are measured to.")
    parser.add_argument("--frechet-dims", type=int, default=64,
                        help="With --frechet, measure on the reference's first this many principal axes (0: all 512 "
                             "features; a class's few hundred tiles cannot fill 512 dimensions).")
    parser.add_argument("--frechet-tolerance", type=float, default=None,
                        help="With --frechet and --class-guidance, a class's scale stays in the running if its Fréchet "
                             "distance is at most this fraction above the class's lowest (0.1: within 10%%; default: "
                             "the distance is not a step of the per-class rule).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="The sampling profile whose other settings (noise spacing) are kept and which "
                             "--write-defaults replaces (default: live; with --results, the profile the sweeps "
                             "measured).")
    add_sweep_arguments(parser)
    parser.add_argument("--per-class", type=int, default=100, help="Unfiltered images per class and setting.")
    parser.add_argument("--batch-size", type=int, default=64, help="Images per generate call.")
    add_rule_arguments(parser)
    add_data_arguments(parser)  # the splits for --near-copies, --texture, --coverage and --frechet
    parser.add_argument("--seed", type=int, default=0, help="Seed for generation.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--output", default=None, help="Optional JSON file for every setting's figures and the choice.")
    parser.add_argument("--class-guidance", action=argparse.BooleanOptionalAction, default=False,
                        help="After choosing one setting, also choose a guidance scale per class among the --guidance "
                             "values measured at that setting (training.class_guidance's rule), kept only if every "
                             "class's F1 stays at --min-class-f1.")
    parser.add_argument("--results", nargs="+", default=None,
                        help="Choose from the settings measured by an earlier run (its --output JSON) instead of "
                             "measuring; the rule flags (--near-copies, --texture, --coverage, tolerances) still "
                             "say which figures the rule uses. Several sweeps of the same generator and settings at "
                             "different --seed values are pooled (training.sweep_pooling) and their spread printed.")
    parser.add_argument("--write-defaults", action=argparse.BooleanOptionalAction, default=False,
                        help="Store the chosen steps, guidance and interval in the generator's generator_config.json.")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_IMAGES_PER_CALL or args.per_class < 1:
        parser.error(f"--batch-size must be 1..{MAX_IMAGES_PER_CALL} and --per-class at least 1.")
    if args.recall_tolerance is not None and not (args.recall_tolerance >= 0 and args.coverage and args.class_guidance):
        parser.error("--recall-tolerance must be 0 or more, and needs --coverage and --class-guidance.")
    if args.frechet_tolerance is not None and not (args.frechet_tolerance >= 0 and args.frechet and args.class_guidance):
        parser.error("--frechet-tolerance must be 0 or more, and needs --frechet and --class-guidance.")
    if args.frechet_reference < 2 or args.frechet_dims < 0 or (args.frechet and args.per_class < 2):
        parser.error("--frechet needs --per-class and --frechet-reference of at least 2 tiles (a covariance), and "
                     "--frechet-dims 0 or more.")
    return args


def class_texture_medians(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Median texture (`pathgen.metrics.texture_energy`) of the tiles of each class, [NUM_CLASSES]."""
    return np.array([np.median(texture_energy(images[labels == c])) for c in range(NUM_CLASSES)])


def train_texture_medians(data_dir: str | None, download: bool = False) -> np.ndarray:
    return class_texture_medians(*load_split("train", data_dir, download))


def texture_figures(images: np.ndarray, labels: np.ndarray, real_medians: np.ndarray) -> dict:
    """Each class's median texture and relative error against `real_medians`; the worst over the tissue classes."""
    medians = class_texture_medians(images, labels)
    errors = np.abs(medians - real_medians) / np.maximum(real_medians, 1e-6)
    tissue = [t.index for t in TISSUE_CLASSES if t.key != "background"]
    return {"texture_median_per_class": {name: float(m) for name, m in zip(CLASS_NAMES, medians, strict=True)},
            "texture_error_per_class": {name: float(e) for name, e in zip(CLASS_NAMES, errors, strict=True)},
            "texture_error_worst": float(errors[tissue].max())}


def train_feature_reference(classifier: TissueClassifier, data_dir: str | None, per_class: int, seed: int,
                            download: bool = False) -> list[np.ndarray]:
    """Classifier features of `per_class` train tiles of each class (a seeded draw), one array per class."""
    images, labels = load_split("train", data_dir, download)
    picks = per_class_indices(labels, per_class, seed)
    features, picked_labels = classifier.features(images[picks]), labels[picks]
    return [features[picked_labels == c] for c in range(NUM_CLASSES)]


def coverage_figures(features: np.ndarray, labels: np.ndarray, reference: list[np.ndarray]) -> dict:
    """k-NN coverage of each class's generated features against that class's reference features, and the mean."""
    figures = {name: precision_recall_density_coverage(reference[c], features[labels == c])
               for c, name in enumerate(CLASS_NAMES)}
    coverage = {name: f["coverage"] for name, f in figures.items()}
    return {"coverage_per_class": coverage, "coverage_mean": float(np.mean(list(coverage.values()))),
            "precision_per_class": {name: f["precision"] for name, f in figures.items()},
            "recall_per_class": {name: f["recall"] for name, f in figures.items()}}


def frechet_figures(features: np.ndarray, labels: np.ndarray, reference: list[np.ndarray], dims: int = 0) -> dict:
    """Fréchet distance of each class's generated features to that class's reference features, on the reference's
    first `dims` principal axes (0: every feature)."""
    distances = {}
    for c, name in enumerate(CLASS_NAMES):
        pair = (reference[c], features[labels == c])
        projected = on_principal_axes(*pair, dims=dims) if dims else pair
        distances[name] = frechet_distance(projected[1], projected[0])
    return {"frechet_per_class": distances}


def measure_setting(generator, classifier: TissueClassifier, setting: Setting,
                    args: argparse.Namespace, reference: NearCopyReference | None = None,
                    texture_reference: np.ndarray | None = None,
                    coverage_reference: list[np.ndarray] | None = None,
                    frechet_reference: list[np.ndarray] | None = None) -> dict:
    steps, guidance, interval, solver, noise_spacing, discriminator_guidance = setting
    bounds = interval_bounds(interval)
    profile = generator.profiles.get(args.profile)
    setattr(generator.profiles, args.profile,
            replace(profile, guidance_interval=bounds, solver=solver, noise_spacing=noise_spacing or profile.noise_spacing,
                    discriminator_guidance=discriminator_guidance))
    started = time.perf_counter()
    generated = [generate_unfiltered(generator, class_index, args.per_class, run_seed=args.seed, stream=TUNING_STREAM,
                                     batch_size=args.batch_size, steps=steps, guidance=guidance, profile=args.profile)
                 for class_index in range(NUM_CLASSES)]
    seconds = time.perf_counter() - started
    images, labels = np.concatenate(generated), np.repeat(np.arange(NUM_CLASSES), args.per_class)
    predictions = classifier.predict_proba(images).argmax(axis=1)
    report = classification_report(labels, predictions)
    per_class_f1 = {name: figures["f1"] for name, figures in report["per_class"].items()}
    result = {"steps": steps, "guidance": guidance, "guidance_interval": list(bounds), "solver": solver,
              "noise_spacing": generator.profiles.get(args.profile).noise_spacing,
              "discriminator_guidance": discriminator_guidance,
              "macro_f1": report["macro_f1"],
              "min_class_f1": min(per_class_f1.values()), "per_class_f1": per_class_f1,
              "images_per_second": len(labels) / seconds,
              # Row c: how the classifier labelled the tiles meant as class c. Classes are sampled from their own
              # seeds, so rows from different settings combine into the confusion matrix of a per-class choice.
              "predicted_counts_per_class": {name: np.bincount(predictions[labels == c], minlength=NUM_CLASSES).tolist()
                                             for c, name in enumerate(CLASS_NAMES)}}
    if reference is not None:
        near = reference.near_copies(images, labels)
        result["near_copy_fraction"] = float(near.mean())
        result["near_copy_fraction_per_class"] = {name: float(near[labels == c].mean())
                                                  for c, name in enumerate(CLASS_NAMES)}
    if texture_reference is not None:
        result |= texture_figures(images, labels, texture_reference)
    features = (classifier.features(images) if coverage_reference is not None or frechet_reference is not None
                else None)
    if coverage_reference is not None:
        result |= coverage_figures(features, labels, coverage_reference)
    if frechet_reference is not None:
        result |= frechet_figures(features, labels, frechet_reference, args.frechet_dims)
    return result


def within_tolerance_of_lowest(candidates: list[dict], key: str, tolerance: float) -> list[dict]:
    return narrowed(candidates, lambda r: r[key], tolerance, lowest=True)


def within_tolerance_of_highest(candidates: list[dict], key: str, tolerance: float) -> list[dict]:
    return narrowed(candidates, lambda r: r[key], tolerance, lowest=False)


def choose(results: list[dict], tolerance: float, min_class_f1: float = 0.0,
           near_copy_tolerance: float | None = None, texture_tolerance: float | None = None,
           coverage_tolerance: float | None = None) -> dict:
    """The six steps in the module docstring; a tolerance of None skips its step, (2), (3) or (4)."""
    candidates = [r for r in results if r["min_class_f1"] >= min_class_f1 - ROUNDING] or results
    if near_copy_tolerance is not None:
        candidates = within_tolerance_of_lowest(candidates, "near_copy_fraction", near_copy_tolerance)
    if texture_tolerance is not None:
        candidates = within_tolerance_of_lowest(candidates, "texture_error_worst", texture_tolerance)
    if coverage_tolerance is not None:
        candidates = within_tolerance_of_highest(candidates, "coverage_mean", coverage_tolerance)
    return max(within_tolerance_of_highest(candidates, "macro_f1", tolerance), key=lambda r: r["images_per_second"])


def distinct_settings(args: argparse.Namespace) -> list[Setting]:
    """The settings to measure. Guidance 1.0 never runs the unconditional pass, so its interval changes nothing:
    it is measured once, at the first interval given."""
    return [Setting(steps, guidance, interval, solver, spacing, weight)
            for steps in args.steps for guidance in args.guidance
            for interval in (args.guidance_intervals[:1] if guidance == 1.0 else args.guidance_intervals)
            for solver in args.solvers for spacing in (args.noise_spacings or [None])
            for weight in args.discriminator_guidance]


def setting_line(result: dict) -> str:
    extra = f"  near-copies {result['near_copy_fraction']:.1%}" if "near_copy_fraction" in result else ""
    extra += f"  worst texture error {result['texture_error_worst']:.1%}" if "texture_error_worst" in result else ""
    extra += f"  coverage {result['coverage_mean']:.3f}" if "coverage_mean" in result else ""
    extra += f"  discriminator {result['discriminator_guidance']:g}" if result.get("discriminator_guidance") else ""
    return (f"steps {result['steps']:3d}  guidance {result['guidance']:4g}  "
            f"interval {interval_flag(tuple(result['guidance_interval'])):>7}  {result['solver']:>15}  "
            f"{result.get('noise_spacing', ''):>8}  "
            f"macro-F1 {result['macro_f1']:.3f}  weakest class {result['min_class_f1']:.3f}{extra}  "
            f"{result['images_per_second']:.1f} images/s")


def class_guidance_line(choice: dict) -> str:
    scales = ", ".join(f"{key} {scale:g}" for key, scale in choice["picked"].items())
    verdict = "kept" if choice["stands"] else "not kept: a class's F1 would fall below --min-class-f1"
    return (f"guidance per class: {scales}; combined macro-F1 {choice['macro_f1']:.3f}, weakest class "
            f"{choice['min_class_f1']:.3f}" + (f", coverage {choice['coverage_mean']:.3f}" if "coverage_mean" in choice
                                               else "") + f" ({verdict})")


def measure_all(args: argparse.Namespace, generator, classifier: TissueClassifier) -> list[dict]:
    """Every distinct setting's figures, with the references its flags ask for read once."""
    reference = NearCopyReference.load(args.data_dir, args.near_copy_percentile, args.download) if args.near_copies else None
    texture_reference = train_texture_medians(args.data_dir, args.download) if args.texture else None
    coverage_reference = (train_feature_reference(classifier, args.data_dir, args.per_class, args.seed, args.download)
                          if args.coverage else None)
    # A draw of its own, so the two references do not share tiles by construction.
    frechet_reference = (train_feature_reference(classifier, args.data_dir, args.frechet_reference, args.seed + 1,
                                                 args.download) if args.frechet else None)
    generator.generate(0, 2, steps=2, seed=0)  # warm-up: the first call pays for oneDNN kernel selection
    results = []
    for setting in distinct_settings(args):
        results.append(measure_setting(generator, classifier, setting, args, reference, texture_reference,
                                       coverage_reference, frechet_reference))
        print(setting_line(results[-1]), flush=True)
    return results


def earlier_sweep(path: str) -> dict:
    """A sweep JSON written by --output, checked to hold measured settings."""
    try:
        earlier = json.loads(Path(path).read_text())
        results = earlier["results"]
        if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
            raise ValueError("it holds no measured settings")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--results {path}: not a sweep written by `tune_sampling --output` ({error}).") from error
    return earlier


def measured_with(path: str, earlier: dict) -> argparse.Namespace:
    """The flags a sweep was measured with, read back from its recorded command."""
    if earlier.get("results_from") is not None:
        raise SystemExit(f"--results {path}: it chose from earlier sweeps rather than measuring; pool the sweeps it "
                         "read instead.")
    try:
        words = shlex.split(earlier["command"])
        return parse_args(words[words.index("training.tune_sampling") + 1:])
    except (KeyError, TypeError, ValueError, SystemExit) as error:
        raise SystemExit(f"--results {path}: its recorded command cannot be read back ({error!r}).") from error


def recorded_profile(sweep: dict) -> str:
    """The --profile in a sweep's recorded command (a choice made from sweeps records it too); live if absent."""
    words = shlex.split(sweep.get("command") or "")
    return words[words.index("--profile") + 1] if "--profile" in words[:-1] else "live"


def swept_profile(args: argparse.Namespace, earlier: list[dict]) -> str:
    """The profile a choice belongs to: --profile when measuring now, else the one the earlier sweeps measured."""
    if not earlier:
        return args.profile or "live"
    measured = {recorded_profile(sweep) for sweep in earlier}
    if len(measured) > 1:
        raise SystemExit(f"--results: the sweeps measured different profiles ({', '.join(sorted(measured))}).")
    (profile,) = measured
    if args.profile not in (None, profile):
        raise SystemExit(f"--profile {args.profile}: the sweeps in --results measured the {profile!r} profile, so "
                         f"their choice belongs to it; leave --profile out or pass --profile {profile}.")
    return profile


def pooled_sweeps(paths: list[str], sweeps: list[dict]) -> tuple[list[dict], dict]:
    """The sweeps' figures pooled per setting and their spread; refused unless the sweeps measured the same
    generator, classifier and settings at different seeds."""
    flags = [measured_with(path, sweep) for path, sweep in zip(paths, sweeps, strict=True)]
    seeds = [f.seed for f in flags]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"--results: the sweeps share a seed ({seeds}); pooling a sweep with its own repeat would "
                         "only count the same tiles twice.")
    for name in SAME_MEASUREMENT:
        if len({json.dumps(getattr(f, name)) for f in flags}) > 1:
            raise SystemExit(f"--results: the sweeps differ in --{name.replace('_', '-')}; only sweeps that differ "
                             "in --seed can be pooled.")
    weights = [{f: h for f, h in s["generator"]["sha256"].items() if f != GENERATOR_CONFIG_NAME}
               for s in sweeps if "generator" in s]
    if any(w != weights[0] for w in weights[1:]):
        raise SystemExit("--results: the sweeps were measured on different generator weights.")
    try:
        return pooled_results([s["results"] for s in sweeps]), between_sweep_spread([s["results"] for s in sweeps])
    except ValueError as error:
        raise SystemExit(f"--results: these sweeps cannot be pooled: {error}.") from error


def spread_line(figure: str, spread: dict) -> str:
    unit = " (relative to the mean)" if spread["relative"] else ""
    return (f"between sweeps, {figure}: standard deviation {spread['sd']:.3f}{unit}, largest "
            f"{spread['largest_sd']:.3f}; standard error of the pooled mean {spread['pooled_standard_error']:.3f}")


def measure(args: argparse.Namespace) -> list[dict]:
    """Every setting's figures, measured now."""
    generator = load_generator(args.generator)
    if not isinstance(generator, PixelDiffusionGenerator) and set(args.guidance_intervals) != {interval_flag(EVERY_STEP)}:
        raise SystemExit(f"{args.generator} is not a pixel-diffusion generator; only --guidance-intervals 0:1 applies.")
    if any(args.discriminator_guidance) and getattr(getattr(generator, "pipeline", None), "discriminator", None) is None:
        raise SystemExit(f"{args.generator} has no discriminator/ folder, so --discriminator-guidance can only be 0; "
                         "train one with `python -m training.train_discriminator`.")
    return measure_all(args, generator, TissueClassifier.from_pretrained(args.classifier))


def recorded_command(args: argparse.Namespace) -> str:
    """The command that repeats this run; with --results, only the flags that choose."""
    if args.results is None:
        return command_line("training.tune_sampling", args)
    choosing = {name: value for name, value in vars(args).items() if name not in MEASURING_FLAGS}
    return command_line("training.tune_sampling", argparse.Namespace(**choosing))


def chosen_from(args: argparse.Namespace, earlier: list[dict]) -> tuple[list[dict], dict | None]:
    """The figures to choose from: measured now, one earlier sweep's, or several sweeps pooled (with their spread)."""
    if not earlier:
        return measure(args), None
    if len(earlier) == 1:
        return earlier[0]["results"], None
    results, spread = pooled_sweeps(args.results, earlier)
    for figure, figure_spread in spread.items():
        print(spread_line(figure, figure_spread))
    return results, spread


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    # With --results the earlier sweeps' own flags say what was measured; their commands are recorded beside ours.
    earlier = [earlier_sweep(path) for path in args.results] if args.results else []
    args.profile = swept_profile(args, earlier)
    results, spread = chosen_from(args, earlier)
    sources = " ".join(args.results or [])
    if args.recall_tolerance is not None and not all("recall_per_class" in r for r in results):
        raise SystemExit(f"--recall-tolerance: the sweeps in {sources} have no per-class recall; measure again "
                         "with --coverage.")
    if args.frechet_tolerance is not None and not all("frechet_per_class" in r for r in results):
        raise SystemExit(f"--frechet-tolerance: the sweeps in {sources} have no per-class Fréchet distance; measure "
                         "it again with --frechet.")
    rule = {"min_class_f1": args.min_class_f1, "tolerance": args.tolerance,
            "near_copy_tolerance": args.near_copy_tolerance if args.near_copies else None,
            "texture_tolerance": args.texture_tolerance if args.texture else None,
            "coverage_tolerance": args.coverage_tolerance if args.coverage else None}
    chosen = choose(results, **rule)
    rule["recall_tolerance"] = args.recall_tolerance
    rule["frechet_tolerance"] = args.frechet_tolerance
    print(f"chosen: steps {chosen['steps']}, guidance {chosen['guidance']}, interval {chosen['guidance_interval']}, "
          f"solver {chosen['solver']}, noise spacing {chosen.get('noise_spacing')}, "
          f"discriminator guidance {chosen['discriminator_guidance']} "
          "(the rule in this script's docstring)")
    chosen = {field.name: chosen[field.name] for field in fields(SamplingDefaults) if field.name in chosen}
    summary = {"command": recorded_command(args),
               "results_from": [{"path": path, "command": sweep.get("command")}
                                for path, sweep in zip(args.results, earlier, strict=True)] if earlier else None,
               "threads": torch.get_num_threads(), "results": results, "rule": rule, "chosen": chosen}
    if spread is not None:
        summary["between_sweep_spread"] = spread
    if not earlier:
        # What a sweep cannot repeat without: the exact models, and the torch build and kernels that drew its tiles.
        summary["generator"] = describe_model(args.generator)
        summary["classifier"] = describe_model(args.classifier)
        summary["environment"] = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if args.class_guidance:
        summary["per_class_choice"] = choose_class_guidance(results, chosen, rule)
        chosen["class_guidance"] = summary["per_class_choice"]["class_guidance"]
        print(class_guidance_line(summary["per_class_choice"]))
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    if args.write_defaults:
        # The choice was measured with the profile's own networks and flat fields, if it has them; it keeps them.
        before = SamplingProfiles.from_config(read_generator_config(args.generator)).get(args.profile)
        kept = {"model": before.model, "class_models": before.class_models, "flat_fields": before.flat_fields}
        write_sampling_defaults(args.generator, SamplingDefaults(**{**kept, **summary["chosen"]}), profile=args.profile)
        print(f"wrote the chosen defaults to {Path(args.generator) / GENERATOR_CONFIG_NAME}")
    return summary


if __name__ == "__main__":
    main(parse_args())
