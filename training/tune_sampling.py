"""Choose the generator's default sampling steps, guidance scale and guidance interval from measurements.

    python -m training.tune_sampling --steps 10 12 --guidance 3 4 --guidance-intervals 0:1 0:0.75 --write-defaults

For every (steps, guidance, interval) setting: `--per-class` unfiltered images per class, judged by the shipped
classifier (paper 1's measure: macro-F1 and the weakest class's F1), and the raw generation speed in
batches of `--batch-size`. The noise comes from a seed stream that `evaluate_generator` never uses, so the
evaluation afterwards is not run on the very images the choice was made on.

The rule: among settings whose macro-F1 is within `--tolerance` of the best, the fastest. `--write-defaults`
stores it in the generator folder's generator_config.json, which `generate()` uses when steps or guidance
are not given. Guidance intervals (`SamplingDefaults.guidance_interval`) exist for the pixel-diffusion backend only.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import NUM_CLASSES
from pathgen.generator import (
    EVERY_STEP,
    GENERATOR_CONFIG_NAME,
    MAX_IMAGES_PER_CALL,
    PixelDiffusionGenerator,
    SamplingDefaults,
    load_generator,
)
from pathgen.metrics import classification_report
from pathgen.validation import generate_unfiltered
from training.build_bank import command_line

TUNING_STREAM = 2  # evaluate_generator draws from streams 0 (unfiltered) and 1 (validated)


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 10, 12], help="Step counts to try.")
    parser.add_argument("--guidance", type=float, nargs="+", default=[2.0, 3.0, 4.0], help="Guidance scales to try.")
    parser.add_argument("--guidance-intervals", type=guidance_interval_flag, nargs="+", default=[interval_flag(EVERY_STEP)],
                        help="LOW:HIGH noise-level windows (t / T, 1 = pure noise) in which guidance is applied; "
                             "0:1 guides every step.")
    parser.add_argument("--per-class", type=int, default=100, help="Unfiltered images per class and setting.")
    parser.add_argument("--batch-size", type=int, default=64, help="Images per generate call.")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="A setting counts as good if its macro-F1 is at most this far below the best one's.")
    parser.add_argument("--seed", type=int, default=0, help="Seed for generation.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--output", default=None, help="Optional JSON file for every setting's figures and the choice.")
    parser.add_argument("--write-defaults", action=argparse.BooleanOptionalAction, default=False,
                        help="Store the chosen steps, guidance and interval in the generator's generator_config.json.")
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= MAX_IMAGES_PER_CALL or args.per_class < 1:
        parser.error(f"--batch-size must be 1..{MAX_IMAGES_PER_CALL} and --per-class at least 1.")
    return args


def measure_setting(generator, classifier: TissueClassifier, steps: int, guidance: float,
                    interval: str, args: argparse.Namespace) -> dict:
    bounds = interval_bounds(interval)
    if isinstance(generator, PixelDiffusionGenerator):
        generator.defaults = replace(generator.defaults, guidance_interval=bounds)
    started = time.perf_counter()
    generated = [generate_unfiltered(generator, class_index, args.per_class, run_seed=args.seed, stream=TUNING_STREAM,
                                     batch_size=args.batch_size, steps=steps, guidance=guidance)
                 for class_index in range(NUM_CLASSES)]
    seconds = time.perf_counter() - started
    labels = np.repeat(np.arange(NUM_CLASSES), args.per_class)
    report = classification_report(labels, classifier.predict_proba(np.concatenate(generated)).argmax(axis=1))
    per_class_f1 = {name: figures["f1"] for name, figures in report["per_class"].items()}
    return {"steps": steps, "guidance": guidance, "guidance_interval": list(bounds),
            "macro_f1": report["macro_f1"],
            "min_class_f1": min(per_class_f1.values()), "per_class_f1": per_class_f1,
            "images_per_second": len(labels) / seconds}


def choose(results: list[dict], tolerance: float) -> dict:
    best = max(result["macro_f1"] for result in results)
    good = [result for result in results if result["macro_f1"] >= best - tolerance]
    return max(good, key=lambda result: result["images_per_second"])


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = load_generator(args.generator)
    if not isinstance(generator, PixelDiffusionGenerator) and set(args.guidance_intervals) != {interval_flag(EVERY_STEP)}:
        raise SystemExit(f"{args.generator} is not a pixel-diffusion generator; only --guidance-intervals 0:1 applies.")
    classifier = TissueClassifier.from_pretrained(args.classifier)
    generator.generate(0, 2, steps=2, seed=0)  # warm-up: the first call pays for oneDNN kernel selection
    results = []
    settings = [(s, g, i) for s in args.steps for g in args.guidance for i in args.guidance_intervals]
    for steps, guidance, interval in settings:
        result = measure_setting(generator, classifier, steps, guidance, interval, args)
        results.append(result)
        print(f"steps {steps:3d}  guidance {guidance:4.1f}  interval {interval:>7}  macro-F1 {result['macro_f1']:.3f}  "
              f"weakest class {result['min_class_f1']:.3f}  {result['images_per_second']:.1f} images/s", flush=True)
    chosen = choose(results, args.tolerance)
    print(f"chosen: steps {chosen['steps']}, guidance {chosen['guidance']}, interval {chosen['guidance_interval']} "
          f"(fastest within {args.tolerance} macro-F1 of the best)")
    summary = {"command": command_line("training.tune_sampling", args),
               "threads": torch.get_num_threads(), "tolerance": args.tolerance, "results": results,
               "chosen": {key: chosen[key] for key in ("steps", "guidance", "guidance_interval")}}
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    if args.write_defaults:
        config_file = Path(args.generator) / GENERATOR_CONFIG_NAME
        config = json.loads(config_file.read_text())
        config["sampling_defaults"] = summary["chosen"]
        config_file.write_text(json.dumps(config, indent=2) + "\n")
        print(f"wrote the chosen defaults to {config_file}")
    return summary


if __name__ == "__main__":
    main(parse_args())
