"""Fill the app's image bank with classifier-validated synthetic tiles.

    python -m training.build_bank

For every class, `generate_validated` keeps regenerating until `--per-class` images pass the shipped
classifier at `--threshold`. With `--exclude-near-copies` (needs PathMNIST's train and val splits, see
`--data-dir`) an image the classifier passed is discarded too when it is a near-copy of a train tile by
`evaluate_generator`'s rule, so no tile a trainee sees sits closer to a patient's tile than 99% of real
held-out tiles of its class do. Writes bank.npz and bank.json (model paths and sha256 hashes, settings,
acceptance per class, date) to `--output-dir`. Fails, writing nothing, if a class cannot be filled.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pathgen.bank import ImageBank
from pathgen.classifier import TissueClassifier
from pathgen.data import TISSUE_CLASSES, add_data_arguments
from pathgen.generation import PROFILES, load_generator
from pathgen.memorisation import DEFAULT_PERCENTILE, NearCopyReference
from pathgen.validation import DEFAULT_THRESHOLD, derive_seed, generate_validated
from training.provenance import command_line, describe_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (load_generator).")
    parser.add_argument("--classifier", default="assets/classifier", help="Classifier folder (from_pretrained).")
    parser.add_argument("--output-dir", default="assets/bank", help="Where bank.npz and bank.json go.")
    parser.add_argument("--per-class", type=int, default=128, help="Validated images per class.")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="Minimum calibrated probability of the requested class.")
    parser.add_argument("--max-attempts", type=int, default=10, help="Regeneration rounds per class before giving up.")
    parser.add_argument("--profile", choices=PROFILES, default="bank",
                        help="Sampling profile of generator_config.json whose settings apply (live: fast, for the "
                             "app; bank: quality first).")
    parser.add_argument("--steps", type=int, default=None, help="Sampling steps (default: the profile's).")
    parser.add_argument("--guidance", type=float, default=None, help="Guidance scale (default: the profile's).")
    parser.add_argument("--batch-size", type=int, default=None, help="Images per generate call (default: pathgen's).")
    parser.add_argument("--seed", type=int, default=0, help="Run seed; each class derives its own from it.")
    parser.add_argument("--exclude-near-copies", action=argparse.BooleanOptionalAction, default=False,
                        help="Also discard near-copies of train tiles (needs the train and val splits).")
    parser.add_argument("--near-copy-percentile", type=float, default=DEFAULT_PERCENTILE,
                        help="With --exclude-near-copies: the percentile of real val tiles' nearest-train distances "
                             "below which a generated tile is a near-copy.")
    add_data_arguments(parser)
    parser.add_argument("--max-mb", type=float, default=15.0, help="Fail if the written bank is larger than this.")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                        help="Sample the pixel diffusion model in bfloat16 (faster where the CPU has native bf16). Off "
                             "by default: fp32 images regenerate from their seeds at the same speed on any CPU.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> ImageBank:
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = load_generator(args.generator)
    if hasattr(generator, "bf16"):
        generator.bf16 = args.bf16
    classifier = TissueClassifier.from_pretrained(args.classifier)
    settings = generator.profiles.get(args.profile)
    steps = settings.steps if args.steps is None else args.steps
    # None samples each class at its profile's own scale; the record names the scale each class was made with.
    guidance = args.guidance
    scales = {t.key: settings.guidance_for(t.index) if guidance is None else guidance for t in TISSUE_CLASSES}
    reference = (NearCopyReference.load(args.data_dir, args.near_copy_percentile, args.download)
                 if args.exclude_near_copies else None)
    batches, acceptance = [], {}
    for tissue in TISSUE_CLASSES:
        started = time.time()
        batch = generate_validated(generator, classifier, tissue.index, args.per_class, threshold=args.threshold,
                                   max_attempts=args.max_attempts, seed=derive_seed(args.seed, tissue.index),
                                   batch_size=args.batch_size, steps=steps, guidance=guidance, profile=args.profile,
                                   exclude=reference.near_copies if reference else None)
        print(f"{tissue.key}: {batch.accepted}/{batch.requested} accepted from {batch.generated} generated "
              f"({batch.acceptance_rate:.0%}, {batch.excluded} near-copies discarded) in "
              f"{time.time() - started:.0f} s", flush=True)
        if not batch.complete:
            raise SystemExit(f"{tissue.key}: only {batch.accepted} of {args.per_class} images reached probability "
                             f"{args.threshold} in {args.max_attempts} rounds; nothing written. Raise --max-attempts, "
                             "or check the generator and classifier.")
        batches.append(batch)
        acceptance[tissue.key] = {"seed": batch.seed, "generated": batch.generated,
                                  "acceptance_rate": batch.acceptance_rate,
                                  "mean_attempts": float(batch.attempts.mean()), "near_copies_discarded": batch.excluded}
    info = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": describe_model(args.generator),
        "classifier": describe_model(args.classifier),
        "threshold": args.threshold, "max_attempts": args.max_attempts, "steps": steps, "guidance": scales,
        "profile": args.profile, "guidance_interval": list(settings.guidance_interval), "solver": settings.solver,
        "noise_spacing": settings.noise_spacing,
        "bf16": getattr(generator, "bf16", None),
        "near_copy_exclusion": reference.summary() if reference else None,
        "seed": args.seed, "per_class": args.per_class, "acceptance": acceptance,
        "image_seeds": "pathgen.validation.regenerate(generator, label, seed, steps=steps, "
                       "guidance=guidance[class key], profile=profile) recreates an image from its seed",
        "reproduce": command_line("training.build_bank", args),
    }
    bank = ImageBank(images=np.concatenate([b.images for b in batches]),
                     labels=np.concatenate([np.full(b.accepted, b.class_index, np.int64) for b in batches]),
                     probabilities=np.concatenate([b.probabilities for b in batches]),
                     seeds=np.concatenate([b.seeds for b in batches]),
                     attempts=np.concatenate([b.attempts for b in batches]), info=info)
    bank.save(args.output_dir)
    size_mb = sum(f.stat().st_size for f in Path(args.output_dir).iterdir() if f.is_file()) / 1e6
    print(f"wrote {args.output_dir}: {len(bank)} images, {size_mb:.2f} MB")
    if size_mb > args.max_mb:
        raise SystemExit(f"the bank in {args.output_dir} is {size_mb:.1f} MB, over the {args.max_mb} MB limit.")
    return bank


if __name__ == "__main__":
    main(parse_args())
