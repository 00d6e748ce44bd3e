"""Give one sampling profile of a generator folder a network of its own, taken from another generator folder.

    python -m training.attach_model --generator assets/generator --profile bank \
        --source long_run/generator-64-128-128-l2-decayed --name unet-bank

The app's `live` generation has a speed target that a bigger UNet misses on a 2-core CPU, while the offline
`bank` is built once and can afford one. This copies the source's `unet/` (fp16 safetensors and config, as
`save_pretrained` wrote them) into GENERATOR/NAME/, with the source's training.json beside it so the network's
history travels with it, and sets the profile's `model` to NAME (with --class, the profile's `class_models` entry
for that class: a network fine-tuned on one class samples that class only; with --mix as well, the class is drawn
from its networks and this one in equal shares); every other setting of the profile stays. Both folders must be
pixel-diffusion generators on the same noise schedule. Run `python -m training.tune_sampling --profile PROFILE`
afterwards: the profile's guidance was chosen for the network it sampled with before.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

from pathgen.data import resolve_class
from pathgen.generation import (
    MODEL_FOLDER_PATTERN,
    PROFILES,
    SamplingDefaults,
    SamplingProfiles,
    read_generator_config,
    write_sampling_defaults,
)
from pathgen.generator import BACKEND, MAIN_MODEL, PixelDiffusionGenerator

RESERVED_NAMES = (MAIN_MODEL, "scheduler", "discriminator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="assets/generator",
                        help="Generator folder that gets the network (changed in place).")
    parser.add_argument("--profile", choices=PROFILES, default="bank", help="The profile that samples with it.")
    parser.add_argument("--source", required=True,
                        help="Pixel-diffusion generator folder whose unet/ is copied, e.g. an export of train_generator.")
    parser.add_argument("--name", default="unet-bank", help="Subfolder of --generator the network is copied to.")
    parser.add_argument("--class", dest="tissue", default=None,
                        help="Attach it for this tissue class only (key, e.g. background): the profile samples that "
                             "class with it and the others as before.")
    parser.add_argument("--mix", action="store_true",
                        help="With --class: add the network to the class's networks, each drawing an equal share of "
                             "its tiles, instead of replacing them.")
    return parser.parse_args(argv)


def pixel_config(folder: Path) -> dict:
    """The folder's generator_config.json; exits unless it is a pixel-diffusion generator."""
    config = read_generator_config(folder)
    if config["backend"] != BACKEND:
        raise SystemExit(f"{folder} is a {config['backend']} generator; only {BACKEND} folders have a unet/ to attach.")
    return config


def check_names(args: argparse.Namespace) -> None:
    if args.tissue is not None:
        try:
            args.tissue = resolve_class(args.tissue).key
        except ValueError as error:
            raise SystemExit(str(error)) from None
    if args.mix and args.tissue is None:
        raise SystemExit("--mix needs --class: only a class's tiles are drawn from several networks.")
    if not MODEL_FOLDER_PATTERN.fullmatch(args.name) or args.name in RESERVED_NAMES:
        raise SystemExit(f"--name must be a plain folder name other than {', '.join(RESERVED_NAMES)}, got {args.name!r}.")
    if Path(args.source).resolve() == Path(args.generator).resolve():
        raise SystemExit("--source and --generator are the same folder; the profile would sample with unet/ anyway.")


def profile_with(before: SamplingDefaults, args: argparse.Namespace) -> SamplingDefaults:
    """`before` sampling with network `args.name`: for the whole profile, for one class, or mixed into that class's."""
    if not args.tissue:
        return replace(before, model=args.name)
    if not args.mix:
        return replace(before, class_models={**before.class_models, args.tissue: args.name})
    networks = [name or MAIN_MODEL for name in before.models_for(args.tissue) if name != args.name]
    return replace(before, class_models={**before.class_models, args.tissue: [*networks, args.name]})


def main(args: argparse.Namespace) -> None:
    check_names(args)
    generator_dir, source_dir = Path(args.generator), Path(args.source)
    profiles = SamplingProfiles.from_config(pixel_config(generator_dir))
    pixel_config(source_dir)
    if not (source_dir / MAIN_MODEL).is_dir():
        raise SystemExit(f"{source_dir} has no {MAIN_MODEL}/ folder; export one with `python -m training.train_generator`.")
    ours = (generator_dir / "scheduler" / "scheduler_config.json").read_text()
    if (source_dir / "scheduler" / "scheduler_config.json").read_text() != ours:
        raise SystemExit(f"{source_dir} was trained on another noise schedule than {generator_dir}; its network would "
                         "be sampled with the wrong noise levels.")
    before = profiles.get(args.profile)
    try:
        after = profile_with(before, args)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    target = generator_dir / args.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source_dir / MAIN_MODEL, target)
    if (source_dir / "training.json").is_file():
        shutil.copy2(source_dir / "training.json", target / "training.json")
    write_sampling_defaults(generator_dir, after, profile=args.profile)
    in_use = set().union(after.models(), *(profiles.get(name).models() for name in PROFILES if name != args.profile))
    for replaced in before.models() - in_use - {"", MAIN_MODEL}:
        shutil.rmtree(generator_dir / replaced, ignore_errors=True)  # nothing samples with it any more
    PixelDiffusionGenerator.from_pretrained(generator_dir)  # loads, or says what is wrong
    what = f"profile {args.profile!r}" + (f", class {args.tissue!r}," if args.tissue else "")
    networks = ", ".join(after.models_for(args.tissue)) if args.mix else str(target)
    print(f"{generator_dir}: {what} now samples with {networks}{' in equal shares' if args.mix else ''} "
          f"({target} copied from {source_dir / MAIN_MODEL})")


if __name__ == "__main__":
    main(parse_args())
