"""Validated tiles per second on this CPU at both sampling profiles, against Stable Diffusion 1.5's UNet at
equal step counts, and the time the app's "Generate fresh examples" button takes.

    python -m benchmarks.generation --threads 2 --output assets/metrics/generation_benchmark.json

Ours, per profile (`live`: the app's on-demand settings; `bank`: the offline quality settings):
`generate_validated` end to end (generate, classify, regenerate the rejects) with the shipped generator and
classifier; seconds per accepted tile. SD 1.5: a random-weight UNet2DConditionModel with SD 1.5's published
architecture, one denoising step on a 64x64 latent at batch 2 (classifier-free guidance), in the same
precision as ours (bf16 autocast where the CPU has native bf16, else fp32); seconds per image = steps x step
time, at each profile's step count. SD's text encoder, VAE decoder and any rejection are left out, so the
ratio understates our advantage. "Generate fresh examples" (Explore tab): 6 validated tiles of one class at
the live profile within the app's per-request round budget, timed for every class.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel

from benchmarks.utils import cpu_description
from pathgen.bank import ImageBank
from pathgen.classifier import TissueClassifier
from pathgen.cpu import has_fast_bf16
from pathgen.data import NUM_CLASSES
from pathgen.generation import PROFILES, load_generator
from pathgen.validation import DEFAULT_THRESHOLD, derive_seed, generate_validated
from training.provenance import command_line, describe_model
from ui.explore import EXPLORE_FRESH
from ui.generate import rounds_allowed

# runwayml/stable-diffusion-v1-5 unet/config.json, less the values that equal diffusers' defaults.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--bank", default="assets/bank",
                        help="Image bank whose threshold the app applies to fresh examples (as ui.services does).")
    parser.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES),
                        help="Sampling profiles to time (each at its own steps and guidance).")
    parser.add_argument("--per-class", type=int, default=16, help="Validated images requested per class per repeat.")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="Acceptance threshold.")
    parser.add_argument("--raw-batch", type=int, default=64,
                        help="Batch size for the raw (unvalidated) generation speed; 64 was fastest on our CPU.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs of ours per profile (the median is reported).")
    parser.add_argument("--fresh-repeats", type=int, default=2,
                        help="Timed 'Generate fresh examples' requests per class (live profile).")
    parser.add_argument("--sd-repeats", type=int, default=2, help="Timed SD UNet steps (the median is reported).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both (default: torch's).")
    parser.add_argument("--output", default=None, help="Optional JSON file for the results.")
    return parser.parse_args(argv)


def raw_generation(generator, profile: str, args: argparse.Namespace) -> tuple[float, list[np.ndarray]]:
    """Unvalidated generation in batches of --raw-batch, one batch per class: images per second, and the
    batches for timing the classifier on."""
    started = time.perf_counter()
    batches = [generator.generate(c, args.raw_batch, seed=c, profile=profile) for c in range(NUM_CLASSES)]
    return NUM_CLASSES * args.raw_batch / (time.perf_counter() - started), batches


def classifier_images_per_second(classifier: TissueClassifier, batches: list[np.ndarray]) -> float:
    """The filter alone: the share of validated time not spent generating."""
    started = time.perf_counter()
    for batch in batches:
        classifier.predict_proba(batch)
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def time_ours(generator, classifier, profile: str, args: argparse.Namespace, seed: int) -> dict:
    started = time.perf_counter()
    batches = [generate_validated(generator, classifier, c, args.per_class, threshold=args.threshold,
                                  seed=derive_seed(seed, c), profile=profile) for c in range(NUM_CLASSES)]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "accepted": sum(b.accepted for b in batches),
            "generated": sum(b.generated for b in batches)}


def time_profile(generator, classifier, profile: str, args: argparse.Namespace) -> dict:
    """Raw and validated speed of one profile; the median of --repeats validated runs."""
    settings = generator.profiles.get(profile)
    # Warm-up: the first calls pay for oneDNN kernel selection.
    generate_validated(generator, classifier, 0, 2, threshold=args.threshold, max_attempts=1, profile=profile)
    raw, raw_batches = raw_generation(generator, profile, args)
    judged = classifier_images_per_second(classifier, raw_batches)
    runs = [time_ours(generator, classifier, profile, args, seed) for seed in range(args.repeats)]
    run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    if not run["accepted"]:
        raise SystemExit(f"{profile}: no image reached probability {args.threshold}; check the generator and classifier.")
    ours = run["seconds"] / run["accepted"]
    print(f"{profile} ({settings.steps} steps, guidance {settings.describe_guidance()}, {settings.solver}, "
          f"{settings.noise_spacing}): unvalidated {raw:.1f} images/s; {run['accepted']} validated of "
          f"{run['generated']} generated in {run['seconds']:.1f} s -> {1 / ours:.1f} validated tiles/s", flush=True)
    return {"sampling": asdict(settings), "steps": settings.steps, "raw_images_per_second": raw,
            "classifier_images_per_second": judged, "runs": runs, "seconds_per_validated_image": ours,
            "validated_images_per_second": 1 / ours}


def time_fresh_examples(generator, classifier, args: argparse.Namespace) -> dict:
    """What Explore's "Generate fresh examples" asks for: EXPLORE_FRESH tiles of one class at the live profile
    within the app's round budget, at the app's threshold (the bank's); seconds per request over every class."""
    threshold = float(ImageBank.load(args.bank).info.get("threshold", DEFAULT_THRESHOLD))
    steps = generator.profiles.get("live").steps
    rounds = rounds_allowed(EXPLORE_FRESH, steps)
    seconds, complete = [], 0
    for repeat in range(args.fresh_repeats):
        for c in range(NUM_CLASSES):
            started = time.perf_counter()
            batch = generate_validated(generator, classifier, c, EXPLORE_FRESH, threshold=threshold,
                                       max_attempts=rounds, seed=derive_seed(repeat, 100 + c), profile="live")
            seconds.append(time.perf_counter() - started)
            complete += batch.complete
    median, worst = statistics.median(seconds), max(seconds)
    print(f'"Generate fresh examples" ({EXPLORE_FRESH} validated tiles, live): median {median:.2f} s, slowest '
          f"{worst:.2f} s over {len(seconds)} requests, {complete} complete (target < 2 s: "
          f"{'met' if worst < 2 else 'NOT met'})", flush=True)
    return {"tiles": EXPLORE_FRESH, "max_attempts": rounds, "threshold": threshold, "seconds": seconds,
            "median_seconds": median, "max_seconds": worst, "complete": complete, "requests": len(seconds)}


@torch.no_grad()
def time_sd_step(unet: UNet2DConditionModel) -> float:
    latents = torch.randn(2, 4, 64, 64)
    text = torch.randn(2, 77, 768)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=has_fast_bf16()):
        unet(latents, 999, encoder_hidden_states=text)
    return time.perf_counter() - started


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = load_generator(args.generator)
    classifier = TissueClassifier.from_pretrained(args.classifier)
    profiles = {profile: time_profile(generator, classifier, profile, args) for profile in args.profiles}
    if "live" in profiles:
        live = profiles["live"]["validated_images_per_second"]
        print(f"live: {live:.1f} validated tiles/s (target >= 10: {'met' if live >= 10 else 'NOT met'})", flush=True)
    fresh = time_fresh_examples(generator, classifier, args)

    unet = UNet2DConditionModel(**SD15_UNET).eval()
    print(f"SD 1.5 UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters, random weights", flush=True)
    time_sd_step(unet)  # warm-up
    sd_step = statistics.median(time_sd_step(unet) for _ in range(args.sd_repeats))
    print(f"SD 1.5: {sd_step:.2f} s per UNet step at batch 2")
    for profile, figures in profiles.items():
        figures["sd15_seconds_per_image"] = figures["steps"] * sd_step
        figures["ratio_sd_over_ours"] = figures["sd15_seconds_per_image"] / figures["seconds_per_validated_image"]
        print(f"{profile}: ours is {figures['ratio_sd_over_ours']:.0f}x faster per validated tile than one SD 1.5 "
              f"image (UNet only, {figures['sd15_seconds_per_image']:.1f} s) at {figures['steps']} steps")
    result = {"command": command_line("benchmarks.generation", args), "generator": describe_model(args.generator),
              "threads": torch.get_num_threads(), **cpu_description(), "threshold": args.threshold, "per_class": args.per_class,
              "raw_batch": args.raw_batch, "profiles": profiles, "generate_fresh_examples": fresh,
              "sd15_unet_seconds_per_step_batch2": sd_step}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
