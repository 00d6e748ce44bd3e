"""Does synthetic data help a classifier trained on a few tiles from another centre? Paper 2's experiment on
PathMNIST's real domain shift.

    python -m training.augmentation_study --data-dir DATA_DIR   # -> assets/metrics/augmentation.json + .png

The generator learned NCT-CRC-HE-100K (the train split); the target is CRC-VAL-HE-7K (the test split, another
centre with another stain). A small, imbalanced labelled target set (--shot-counts per class) is drawn from test
once (--shot-seed); every arm is evaluated on the rest of test, never on the shots:
  a  the shots alone                       b  + --synthetic-per-class unguided synthetic tiles per class
  c  + as many tiles guided by the shots   d  the shots with classical HED stain + colour jitter
  e  TSTR: --tstr-per-class synthetic vs as many real train tiles per class, tested on val and held-out test
  reference: all of train, tested on the held-out test tiles.
Every classifier is train_classifier's ResNet-18 recipe for the same --steps (training/classifier_recipe.py),
once per --seeds; gains are paired by seed (mean, sd, 95% t-interval). Generated sets are cached under
--runs-dir keyed by the model hashes and settings, and so is every finished (arm, seed) run, keyed by its tiles,
recipe and seed: with --segment-minutes a long study runs in segments, each rerun of the command going on
where the last stopped. This study uses the test split as a second centre; the shipped classifier and its test
figures are untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats

from pathgen.classifier import TissueClassifier
from pathgen.cpu import has_fast_bf16
from pathgen.data import CLASS_NAMES, NUM_CLASSES, add_data_arguments, load_split, per_class_indices
from pathgen.generation import PROFILES, load_generator
from pathgen.validation import DEFAULT_THRESHOLD
from training.classifier_recipe import Recipe, score, train
from training.provenance import command_line, describe_model
from training.synthetic_sets import SetSettings, cache_key, draw_shots, synthesize_set

# About 1.6% of the 7180 test tiles: tens for the common classes, a few for the rare ones (paper 2's imbalance).
DEFAULT_SHOTS = (20, 10, 5, 30, 5, 10, 3, 3, 30)
GAINS = {"b - a": ("b", "a"), "c - a": ("c", "a"), "d - a": ("d", "a"), "c - d": ("c", "d"), "c - b": ("c", "b")}
ARM_ORDER = ("a", "b", "c", "d", "e_synthetic", "e_real", "reference")
SYNTHETIC_ARMS = ("b", "c", "e_synthetic")
PAPER_2 = {"resnet_small_imbalanced_set": 0.273, "resnet_with_5000_synthetic_per_class": 0.784,
           "clip_small_set": 0.618, "clip_with_synthetic": 0.768}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--shot-counts", type=int, nargs=NUM_CLASSES, default=list(DEFAULT_SHOTS),
                        help="Labelled target tiles drawn from test for each of the nine classes, in class order.")
    parser.add_argument("--shot-seed", type=int, default=0, help="Seed of the shot draw and of the generated sets.")
    parser.add_argument("--synthetic-per-class", type=int, default=5000, help="Synthetic tiles per class in arms b and c.")
    parser.add_argument("--tstr-per-class", type=int, default=2000, help="Synthetic and real tiles per class in arm e.")
    parser.add_argument("--strength", type=float, default=0.5, help="SDEdit noise level of the guided set (arm c).")
    parser.add_argument("--profile", choices=PROFILES, default="live", help="The generator's sampling profile.")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="Acceptance probability of generated tiles.")
    parser.add_argument("--stain-strength", type=float, default=0.05,
                        help="HED stain jitter half-width of arm d (pathgen.augment.stain_jitter, as train_classifier).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds (at least 3 for intervals).")
    parser.add_argument("--arms", nargs="+", choices=ARM_ORDER, default=list(ARM_ORDER),
                        help="Train only these arms, e.g. the generator-free ones in one process and b c e_synthetic "
                             "in another on a second core; the report is written by a run with every arm.")
    parser.add_argument("--steps", type=int, default=2000, help="Optimisation steps of every classifier.")
    parser.add_argument("--batch-size", type=int, default=256, help="Training batch size.")
    parser.add_argument("--lr", type=float, default=0.1, help="Peak SGD learning rate (one-cycle).")
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N train tiles (tests).")
    parser.add_argument("--generator", default="assets/generator", help="Generator folder.")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier that validates generated tiles.")
    parser.add_argument("--runs-dir", default="runs/augmentation",
                        help="Cache of generated sets and of finished runs (a rerun only trains what is missing).")
    parser.add_argument("--segment-minutes", type=float, default=None,
                        help="Start no new training after this many minutes; rerun the same command to continue.")
    parser.add_argument("--output", default="assets/metrics/augmentation.json", help="The JSON report.")
    parser.add_argument("--plot", default="assets/metrics/augmentation.png", help="The figure.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False, help="bfloat16 autocast in training.")
    parser.add_argument("--print-report", default=None, metavar="JSON",
                        help="Print the tables of an existing report (markdown) and exit; nothing is trained.")
    return parser.parse_args(argv)


def generated_sets(args: argparse.Namespace, shots_by_class: dict[int, np.ndarray], shot_indices: np.ndarray,
                   names: set[str]) -> dict:
    """Of the unguided set (its first --tstr-per-class per class serve arm e) and the guided set, those in `names`;
    each cached."""
    generator, classifier = load_generator(args.generator), TissueClassifier.from_pretrained(args.classifier)
    profile = generator.profiles.get(args.profile).to_dict()
    sets = {}
    for name, guided in (("unguided", False), ("guided", True)):
        if name not in names:
            continue
        per_class = args.synthetic_per_class if guided else max(args.synthetic_per_class, args.tstr_per_class)
        settings = SetSettings(profile=args.profile, threshold=args.threshold, seed=args.shot_seed,
                               strength=args.strength if guided else None, shot_split="test" if guided else None,
                               shot_indices=tuple(int(i) for i in shot_indices) if guided else ())
        key = cache_key(args.generator, args.classifier, settings, profile)
        images, labels, acceptance = synthesize_set(
            generator, classifier, per_class, settings, Path(args.runs_dir) / "sets" / f"{name}-{key}",
            shots_by_class if guided else None, desc=name)
        sets[name] = {"images": images, "labels": labels, "acceptance": acceptance, "cache_key": key,
                      "per_class": per_class}
    return sets


def summarise(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1)) if len(array) > 1 else None}


def paired_gain(first: list[float], second: list[float]) -> dict:
    """Mean, sd and 95% t-interval of per-seed differences (None where one seed gives no spread)."""
    diff = np.asarray(first) - np.asarray(second)
    result = {"mean": float(diff.mean()), "sd": None, "ci95": None, "per_seed": diff.tolist()}
    if len(diff) > 1:
        sd = float(diff.std(ddof=1))
        half = float(stats.t.ppf(0.975, len(diff) - 1) * sd / np.sqrt(len(diff)))
        result.update(sd=sd, ci95=[result["mean"] - half, result["mean"] + half])
    return result


def arrays_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def run_path(args: argparse.Namespace, name: str, train_digest: str, test_digest: str, recipe: Recipe, seed: int) -> Path:
    """Where one arm's run for one seed is stored: keyed by its training tiles, the test tiles, recipe and seed."""
    text = json.dumps({"arm": name, "train": train_digest, "test": test_digest, "recipe": asdict(recipe), "seed": seed},
                      sort_keys=True)
    return Path(args.runs_dir) / "results" / f"{name}-seed{seed}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def train_and_score(images: np.ndarray, labels: np.ndarray, recipe: Recipe, seed: int, data: dict, with_val: bool) -> dict:
    started = time.time()
    model = train(images, labels, recipe, seed)
    run = {"seed": seed, "held_out_test": score(model, *data["held_out"]), "train_s": time.time() - started}
    if with_val:
        run["val"] = score(model, *data["val"])
    return run


def real_arms(args: argparse.Namespace, data: dict) -> dict:
    """The arms that need no generator: trained before any synthetic set is generated, so a study cut short by
    --segment-minutes has its baselines first."""
    shots_x, shots_y = data["shots"]
    real_tstr = per_class_indices(data["train"][1], args.tstr_per_class, seed=args.shot_seed)
    return {"a": (shots_x, shots_y, 0.0), "d": (shots_x, shots_y, args.stain_strength),
            "e_real": (data["train"][0][real_tstr], data["train"][1][real_tstr], 0.0),
            "reference": (*data["train"], 0.0)}


def synthetic_arms(args: argparse.Namespace, data: dict, sets: dict) -> dict:
    """The arms whose generated set is in `sets`: b and e_synthetic use the unguided set, c the guided one."""
    shots_x, shots_y = data["shots"]
    arms = {}
    if "unguided" in sets:
        unguided = sets["unguided"]
        tstr = per_class_indices(unguided["labels"], args.tstr_per_class)
        arms["b"] = (np.concatenate([shots_x, unguided["images"]]), np.concatenate([shots_y, unguided["labels"]]), 0.0)
        arms["e_synthetic"] = (unguided["images"][tstr], unguided["labels"][tstr], 0.0)
    if "guided" in sets:
        guided = sets["guided"]
        arms["c"] = (np.concatenate([shots_x, guided["images"]]), np.concatenate([shots_y, guided["labels"]]), 0.0)
    return {name: arms[name] for name in SYNTHETIC_ARMS if name in arms}


def run_arms(args: argparse.Namespace, data: dict, arms: dict, deadline: float) -> dict | None:
    """Trains every arm of `arms` that --arms asks for once per seed; returns per-seed scores keyed by arm. Each
    finished run is stored under --runs-dir and reused, so a run cut short at `deadline` (None returned) resumes
    where it stopped."""
    arms = {name: arm for name, arm in arms.items() if name in args.arms}
    results = {name: {"train_tiles": len(labels), "runs": []} for name, (_, labels, _) in arms.items()}
    digests = {name: arrays_digest(images, labels) for name, (images, labels, _) in arms.items()}
    test_digest = arrays_digest(*data["held_out"], *data["val"])
    for seed in args.seeds:
        for name, (images, labels, stain) in arms.items():
            recipe = Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, stain_strength=stain, bf16=args.bf16)
            path = run_path(args, name, digests[name], test_digest, recipe, seed)
            if path.is_file():
                run = json.loads(path.read_text())
            elif time.time() > deadline:
                done = sum(len(r["runs"]) for r in results.values())
                print(f"Segment time is up after {done} of {len(arms) * len(args.seeds)} runs of arms "
                      f"{', '.join(arms)}; rerun the same command to continue (finished runs are kept under "
                      "--runs-dir).", flush=True)
                return None
            else:
                run = train_and_score(images, labels, recipe, seed, data, with_val=name.startswith("e_"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(run, indent=2) + "\n")
                print(json.dumps({"arm": name, **run}), flush=True)
            results[name]["runs"].append(run)
    return results


def all_arms(args: argparse.Namespace, data: dict, shot_indices: np.ndarray) -> tuple[dict, dict] | None:
    """Generator-free arms, then the synthetic sets, then the arms that use them; None when the segment ends or
    --arms asks for only some of them."""
    deadline = math.inf if args.segment_minutes is None else time.time() + 60 * args.segment_minutes
    wanted = set(args.arms)
    results = run_arms(args, data, real_arms(args, data), deadline)
    if results is None:
        return None
    sets = {}
    # Only the sets the wanted arms use, so that e.g. --arms b e_synthetic need not wait for the guided set.
    names = ({"unguided"} if wanted & {"b", "e_synthetic"} else set()) | ({"guided"} if "c" in wanted else set())
    if names:
        shots_x, shots_y = data["shots"]
        sets = generated_sets(args, {c: shots_x[shots_y == c] for c in range(NUM_CLASSES)}, shot_indices, names)
        synthetic = run_arms(args, data, synthetic_arms(args, data, sets), deadline)
        if synthetic is None:
            return None
        results.update(synthetic)
    if wanted != set(ARM_ORDER):
        print(f"Arms {', '.join(sorted(wanted))} are trained; the report needs every arm: run the command without "
              "--arms (finished runs are reused).", flush=True)
        return None
    return {name: results[name] for name in ARM_ORDER}, sets


def summary(results: dict) -> tuple[dict, dict, dict]:
    """Per-arm mean/sd, paired gains, and the TSTR ratios."""
    def values(arm: str, split: str, metric: str) -> list[float]:
        return [run[split][metric] for run in results[arm]["runs"]]

    arms = {name: {split: {metric: summarise(values(name, split, metric)) for metric in ("accuracy", "macro_f1")}
                   for split in ("held_out_test", "val") if split in results[name]["runs"][0]}
            for name in results}
    gains = {label: {metric: paired_gain(values(x, "held_out_test", metric), values(y, "held_out_test", metric))
                     for metric in ("accuracy", "macro_f1")} for label, (x, y) in GAINS.items()}
    tstr = {split: {metric: arms["e_synthetic"][split][metric]["mean"] / arms["e_real"][split][metric]["mean"]
                    for metric in ("accuracy", "macro_f1")} for split in ("val", "held_out_test")}
    return arms, gains, tstr


def plot(arms: dict, path: Path) -> None:
    figure = Figure(figsize=(8, 4), layout="tight")
    axis = figure.subplots()
    names = list(arms)
    means = [arms[n]["held_out_test"]["accuracy"]["mean"] for n in names]
    sds = [arms[n]["held_out_test"]["accuracy"]["sd"] or 0.0 for n in names]
    axis.bar(names, means, yerr=sds, capsize=4, color="#b4619e")
    axis.set_ylabel("accuracy on held-out test tiles")
    axis.set_ylim(0, 1)
    axis.set_title("Augmentation study (mean ± sd over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


ARM_NAMES = {"a": "a. target shots alone", "b": "b. + unguided synthetic", "c": "c. + synthetic guided by the shots",
             "d": "d. shots + HED stain / colour jitter", "e_synthetic": "e. synthetic only (TSTR)",
             "e_real": "e. real train tiles only, same count", "reference": "reference: all of train"}


def markdown_tables(report: dict) -> str:
    """The arms (held-out test, mean ± sd over seeds), the paired gains with their 95% intervals, and TSTR."""
    def pm(stat: dict) -> str:
        return f"{stat['mean']:.3f} ± {stat['sd']:.3f}" if stat["sd"] is not None else f"{stat['mean']:.3f}"

    def interval(gain: dict) -> str:
        return "n/a" if gain["ci95"] is None else f"[{gain['ci95'][0]:+.3f}, {gain['ci95'][1]:+.3f}]"

    lines = ["| arm | training tiles | accuracy | macro-F1 |", "| --- | --- | --- | --- |"]
    for name, arm in report["arms"].items():
        test = arm["held_out_test"]
        lines.append(f"| {ARM_NAMES.get(name, name)} | {report['runs'][name]['train_tiles']} | {pm(test['accuracy'])} "
                     f"| {pm(test['macro_f1'])} |")
    lines += ["", "| gain | accuracy (95% interval) | macro-F1 (95% interval) |", "| --- | --- | --- |"]
    for label, gain in report["gains"].items():
        acc, f1 = gain["accuracy"], gain["macro_f1"]
        lines.append(f"| {label} | {acc['mean']:+.3f} {interval(acc)} | {f1['mean']:+.3f} {interval(f1)} |")
    lines += ["", "| TSTR ratio (synthetic-only / real-only) | accuracy | macro-F1 |", "| --- | --- | --- |"]
    for split, ratio in report["tstr_ratio"].items():
        lines.append(f"| {split} | {ratio['accuracy']:.3f} | {ratio['macro_f1']:.3f} |")
    return "\n".join(lines)


def load_data(args: argparse.Namespace) -> tuple[dict, np.ndarray]:
    train_x, train_y = load_split("train", args.data_dir, args.download)
    test_x, test_y = load_split("test", args.data_dir, args.download)
    shot_indices = draw_shots(test_y, args.shot_counts, args.shot_seed)
    held_out = np.setdiff1d(np.arange(len(test_y)), shot_indices)
    data = {"train": (train_x[: args.train_limit], train_y[: args.train_limit]),
            "val": load_split("val", args.data_dir, args.download),
            "shots": (test_x[shot_indices], test_y[shot_indices]), "held_out": (test_x[held_out], test_y[held_out])}
    return data, shot_indices


def main(args: argparse.Namespace) -> dict | None:
    if args.print_report:
        report = json.loads(Path(args.print_report).read_text())
        print(markdown_tables(report))
        return report
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    data, shot_indices = load_data(args)
    finished = all_arms(args, data, shot_indices)
    if finished is None:
        return None
    results, sets = finished
    arms, gains, tstr = summary(results)
    report = {
        "command": command_line("training.augmentation_study", args),
        "generator": describe_model(args.generator), "classifier": describe_model(args.classifier),
        "design": {"shot_counts": dict(zip(CLASS_NAMES, args.shot_counts, strict=True)), "shots": len(shot_indices),
                   "shot_fraction_of_test": len(shot_indices) / (len(shot_indices) + len(data["held_out"][1])),
                   "held_out_test_tiles": len(data["held_out"][1]), "shot_indices": shot_indices.tolist(),
                   "seeds": args.seeds, "recipe": asdict(Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, bf16=args.bf16)),
                   "arm_d_augmentation": f"pathgen.augment.stain_jitter (HED, strength {args.stain_strength}) + colour_jitter"},
        "generated": {name: {k: v for k, v in s.items() if k not in ("images", "labels")} for name, s in sets.items()},
        "arms": arms, "gains": gains, "tstr_ratio": tstr, "runs": results, "paper_2": PAPER_2,
        # bf16 training rounds differently with and without native bf16 kernels, so runs repeat per CPU kind.
        "cpu": {"capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": has_fast_bf16(),
                "threads": torch.get_num_threads()},
        "wall_time_min": (time.time() - started) / 60,
        "training_min": sum(run["train_s"] for arm in results.values() for run in arm["runs"]) / 60,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    plot(arms, Path(args.plot))
    print(markdown_tables(report))
    return report


if __name__ == "__main__":
    main(parse_args())
