"""Export validated synthetic tiles in PathMNIST's own layout, plus a JSON record beside the file.

    python -m training.export_synthetic --per-class 5000 --output synthetic/pathmnist.npz --workers 2
    python -m training.export_synthetic --per-class 5000 --output guided.npz \\
        --guided-by-split test --shots 10 --strength 0.5 --seed 0 --data-dir DATA_DIR
    python -m training.export_synthetic --per-class 4000 --output fakes/pathmnist.npz --profile bank \\
        --unfiltered --classes background

The file holds `train_images` uint8 [M, 28, 28, 3] and `train_labels` uint8 [M, 1] (and `val_*`/`test_*` with
--val-per-class/--test-per-class), so `np.load` reads it, and so does `pathgen.data.load_split` (or medmnist)
when it is named pathmnist.npz and its folder is passed as --data-dir. Every tile passed the classifier at
--threshold, unless --unfiltered keeps every tile as drawn; --classes limits the export to the named classes.
--workers N generates N classes at a time in N processes (one core each). With
--guided-by-split, --shots real tiles per class are drawn from that split (seeded) and each synthetic tile
starts from one of its class's shots (SDEdit at --strength). Chunks are cached under --cache-dir, so an
interrupted export resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import CLASS_NAMES, NUM_CLASSES, add_data_arguments, class_indices, class_keys, load_split
from pathgen.generation import PROFILES, load_generator
from pathgen.memorisation import NearCopyReference
from pathgen.validation import DEFAULT_THRESHOLD
from training.provenance import command_line, describe_model
from training.synthetic_sets import (
    ModelSources,
    SetSettings,
    cache_key,
    draw_shots,
    fill_cache_in_parallel,
    synthesize_set,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, required=True, help="Synthetic train tiles per class.")
    parser.add_argument("--output", required=True, help="The .npz file to write; the JSON record goes beside it.")
    parser.add_argument("--val-per-class", type=int, default=0, help="Also write val_images/val_labels (0: no).")
    parser.add_argument("--test-per-class", type=int, default=0, help="Also write test_images/test_labels (0: no).")
    parser.add_argument("--profile", choices=PROFILES, default="live", help="The generator's sampling profile.")
    parser.add_argument("--guided-by-split", choices=("train", "val", "test"), default=None,
                        help="Guide every tile by real shots drawn from this PathMNIST split (default: unguided).")
    parser.add_argument("--shots", type=int, default=10, help="Real shots per class with --guided-by-split.")
    parser.add_argument("--strength", type=float, default=0.5,
                        help="Noise level the shots start from with --guided-by-split (0 < S <= 1; 1 ignores them).")
    parser.add_argument("--seed", type=int, default=0, help="Seed for the shots and the generated tiles.")
    parser.add_argument("--generator", default="assets/generator", help="Generator folder (either backend).")
    parser.add_argument("--classifier", default="assets/classifier", help="The classifier that validates every tile.")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="Acceptance probability.")
    parser.add_argument("--unfiltered", action=argparse.BooleanOptionalAction, default=False,
                        help="Keep every tile as drawn, with no classifier in the loop (e.g. the fakes a discriminator "
                             "learns from); --threshold and --max-attempts then do nothing.")
    parser.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                        help="Export only these tissue classes (keys, e.g. background). Default: every class.")
    parser.add_argument("--max-attempts", type=int, default=10, help="Regeneration rounds per chunk.")
    parser.add_argument("--exclude-near-copies", action=argparse.BooleanOptionalAction, default=False,
                        help="Also discard near-copies of train tiles (needs the train and val splits).")
    add_data_arguments(parser)
    parser.add_argument("--cache-dir", default="runs/synthetic", help="Where generated chunks are cached for resuming.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--workers", type=int, default=1,
                        help="Processes that generate classes side by side, one CPU thread each (e.g. the core count); "
                             "the tiles are the same for any number.")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.per_class < 1 or args.val_per_class < 0 or args.test_per_class < 0:
        raise SystemExit("--per-class must be at least 1, --val-per-class and --test-per-class at least 0.")
    if args.guided_by_split and (args.shots < 1 or not 0 < args.strength <= 1):
        raise SystemExit("--shots must be at least 1 and --strength in (0, 1].")
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1.")
    if not args.output.endswith(".npz"):
        raise SystemExit("--output must end in .npz.")
    if args.unfiltered and (args.guided_by_split or args.exclude_near_copies):
        raise SystemExit("--unfiltered draws plain samples: it takes neither --guided-by-split nor --exclude-near-copies.")
    try:
        args.classes = class_keys(args.classes)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def read_shots(args: argparse.Namespace) -> tuple[np.ndarray, dict[int, np.ndarray]] | tuple[None, None]:
    """The shot indices into --guided-by-split and the shot tiles of each class."""
    if not args.guided_by_split:
        return None, None
    images, labels = load_split(args.guided_by_split, args.data_dir, args.download)
    indices = draw_shots(labels, [args.shots] * NUM_CLASSES, args.seed)
    return indices, {c: images[indices[labels[indices] == c]] for c in range(NUM_CLASSES)}


def main(args: argparse.Namespace) -> dict:
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    generator, classifier = load_generator(args.generator), TissueClassifier.from_pretrained(args.classifier)
    shot_indices, shots = read_shots(args)
    exclude = None
    if args.exclude_near_copies:
        exclude = NearCopyReference.load(args.data_dir, download=args.download).near_copies
    arrays, record_splits = {}, {}
    classes = class_indices(args.classes)
    for split, count in (("train", args.per_class), ("val", args.val_per_class), ("test", args.test_per_class)):
        if count == 0:
            continue
        settings = SetSettings(profile=args.profile, threshold=None if args.unfiltered else args.threshold,
                               max_attempts=args.max_attempts,
                               seed=args.seed, split=split, strength=args.strength if shots else None,
                               shot_split=args.guided_by_split, near_copies_excluded=args.exclude_near_copies,
                               shot_indices=tuple(int(i) for i in shot_indices) if shots else ())
        key = cache_key(args.generator, args.classifier, settings, generator.profiles.get(args.profile).to_dict())
        if args.workers > 1:
            sources = ModelSources(args.generator, args.classifier, args.data_dir, args.download)
            fill_cache_in_parallel(sources, count, settings, Path(args.cache_dir) / key, args.workers, shots,
                                   desc=f"{split} ({key})", classes=classes)
        images, labels, stats = synthesize_set(generator, classifier, count, settings, Path(args.cache_dir) / key,
                                               shots, exclude, desc=f"{split} ({key})", classes=classes)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels.astype(np.uint8)[:, None]
        record_splits[split] = {"tiles": len(images), "per_class": count, "cache": str(Path(args.cache_dir) / key),
                                "acceptance": stats}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, **arrays)
    record = {
        "command": command_line("training.export_synthetic", args),
        "generator": describe_model(args.generator), "classifier": describe_model(args.classifier),
        "sampling": {"profile": args.profile, **generator.profiles.get(args.profile).to_dict()},
        "threshold": None if args.unfiltered else args.threshold, "max_attempts": args.max_attempts, "seed": args.seed,
        "near_copies_excluded": args.exclude_near_copies,
        "guidance": None if not shots else {"split": args.guided_by_split, "shots_per_class": args.shots,
                                            "strength": args.strength, "shot_indices": [int(i) for i in shot_indices]},
        "classes": [CLASS_NAMES[c] for c in classes], "splits": record_splits, "workers": args.workers,
        "wall_time_s": time.time() - started,
        "note": ("Synthetic tiles, " + ("unfiltered" if args.unfiltered else "validated by a classifier")
                 + "; for research and education, never for diagnosis."),
    }
    output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {output} ({', '.join(f'{k}: {v.shape[0]}' for k, v in arrays.items() if k.endswith('images'))})")
    return record


if __name__ == "__main__":
    main(parse_args())
