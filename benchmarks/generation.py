"""Validated images per second on this CPU, against Stable Diffusion 1.5's UNet at equal step counts.

    python -m benchmarks.generation

Ours: `generate_validated` end to end (generate, classify, regenerate the rejects) with the shipped generator
and classifier; seconds per accepted image. SD 1.5: a random-weight UNet2DConditionModel with SD 1.5's
published architecture, one denoising step on a 64x64 latent at batch 2 (classifier-free guidance), in the
same precision as ours (bf16 autocast where the CPU has native bf16, else fp32); seconds per image =
steps x step time. SD's text encoder, VAE decoder and any rejection are left out, so the ratio understates
our advantage.
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

from pathgen.classifier import TissueClassifier
from pathgen.cpu import has_fast_bf16
from pathgen.data import NUM_CLASSES
from pathgen.generator import load_generator
from pathgen.validation import DEFAULT_THRESHOLD, derive_seed, generate_validated

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
    parser.add_argument("--steps", type=int, default=None,
                        help="Denoising steps for both models (default: our generator's default).")
    parser.add_argument("--per-class", type=int, default=16, help="Validated images requested per class per repeat.")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="Acceptance threshold.")
    parser.add_argument("--raw-batch", type=int, default=64,
                        help="Batch size for the raw (unvalidated) generation speed; 64 was fastest on our CPU.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs of ours (the median is reported).")
    parser.add_argument("--sd-repeats", type=int, default=2, help="Timed SD UNet steps (the median is reported).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads for both (default: torch's).")
    parser.add_argument("--output", default=None, help="Optional JSON file for the results.")
    return parser.parse_args(argv)


def raw_generation(generator, args: argparse.Namespace) -> tuple[float, list[np.ndarray]]:
    """Unvalidated generation in batches of --raw-batch, one batch per class (the issue's 20 images/s target):
    images per second, and the batches for timing the classifier on."""
    started = time.perf_counter()
    batches = [generator.generate(c, args.raw_batch, seed=c, steps=args.steps) for c in range(NUM_CLASSES)]
    return NUM_CLASSES * args.raw_batch / (time.perf_counter() - started), batches


def classifier_images_per_second(classifier: TissueClassifier, batches: list[np.ndarray]) -> float:
    """The judge alone: the share of validated time not spent generating."""
    started = time.perf_counter()
    for batch in batches:
        classifier.predict_proba(batch)
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def time_ours(generator, classifier, args: argparse.Namespace, seed: int) -> dict:
    started = time.perf_counter()
    batches = [generate_validated(generator, classifier, c, args.per_class, threshold=args.threshold,
                                  seed=derive_seed(seed, c), steps=args.steps) for c in range(NUM_CLASSES)]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "accepted": sum(b.accepted for b in batches),
            "generated": sum(b.generated for b in batches)}


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
    args.steps = generator.defaults.steps if args.steps is None else args.steps

    # Warm-up: the first calls pay for oneDNN kernel selection.
    generate_validated(generator, classifier, 0, 2, threshold=args.threshold, max_attempts=1, steps=args.steps)
    raw, raw_batches = raw_generation(generator, args)
    print(f"ours, unvalidated: {raw:.1f} images/s in batches of {args.raw_batch} at {args.steps} steps "
          f"(target >= 20/s: {'met' if raw >= 20 else 'NOT met'}, ratio {raw / 20:.2f})", flush=True)
    judged = classifier_images_per_second(classifier, raw_batches)
    views = "eight-view averaged" if classifier.config.dihedral_tta else "single-view"
    print(f"classifier alone ({views}): {judged:.1f} images/s in batches of {args.raw_batch}", flush=True)
    runs = [time_ours(generator, classifier, args, seed) for seed in range(args.repeats)]
    run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    if not run["accepted"]:
        raise SystemExit(f"no image reached probability {args.threshold}; check the generator and classifier.")
    ours = run["seconds"] / run["accepted"]
    print(f"ours: {run['accepted']} validated of {run['generated']} generated in {run['seconds']:.1f} s "
          f"-> {ours:.4f} s per validated image ({1 / ours:.1f}/s)", flush=True)

    unet = UNet2DConditionModel(**SD15_UNET).eval()
    print(f"SD 1.5 UNet: {sum(p.numel() for p in unet.parameters()) / 1e6:.0f}M parameters, random weights", flush=True)
    time_sd_step(unet)  # warm-up
    sd_step = statistics.median(time_sd_step(unet) for _ in range(args.sd_repeats))
    sd = args.steps * sd_step
    ratio = sd / ours
    print(f"SD 1.5: {sd_step:.2f} s per UNet step at batch 2 -> {sd:.1f} s per image at {args.steps} steps")
    print(f"ratio: ours is {ratio:.0f}x faster per validated image than one SD 1.5 image (UNet only) "
          f"at {args.steps} steps; target >= 1000x: {'met' if ratio >= 1000 else 'NOT met'}")
    result = {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "native_bf16": has_fast_bf16(), "steps": args.steps, "threshold": args.threshold,
              "sampling_defaults": asdict(generator.defaults),
              "ours_raw_images_per_second": raw, "raw_batch": args.raw_batch,
              "classifier_images_per_second": judged, "ours_runs": runs, "ours_seconds_per_validated_image": ours,
              "ours_validated_images_per_second": 1 / ours, "sd15_unet_seconds_per_step_batch2": sd_step,
              "sd15_seconds_per_image": sd, "ratio_sd_over_ours": ratio}
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
