"""Train the class-conditional pixel diffusion model on PathMNIST train.

    python -m training.train_generator --data-dir ../shared/data --output-dir assets/generator

v-prediction on a cosine schedule. Two recipes for where the training effort goes:
`--noise-sampling uniform --loss-weighting min-snr` (uniform timesteps, min-SNR-5 weights; Hang et
al., 2023) and `--noise-sampling lognormal --loss-weighting edm` (noise levels drawn log-normally
and weighted as in EDM, Karras et al., 2022, which puts the effort on the middle and low noise
levels where tissue texture is decided).

Training runs in segments: `--segment-minutes` stops a run cleanly, the next call with the same
`--checkpoint-dir` resumes it (model, every EMA, optimiser, RNG, step), and each segment is
appended to training.json beside the exported weights. Every `--save-every` steps each EMA is
exported with `save_pretrained`, a sample grid is written, and the held-out val denoising loss of
each EMA is logged (a fixed set of val tiles, noise levels and noise), so runs and recipes can be
compared at equal CPU time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel
from PIL import Image
from tqdm import tqdm

from pathgen.augment import random_dihedral
from pathgen.cpu import has_fast_bf16
from pathgen.data import NUM_CLASSES, TISSUE_CLASSES, add_data_arguments, load_split, resolve_class
from pathgen.flat_fields import EXACT_COLOURS, EXACT_MIN_SHARE, EXACT_TOLERANCE, exact_colour_tiles, frequent_colours
from pathgen.generation import PROFILES, SamplingProfiles, read_generator_config
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet
from training.noise_levels import add_noise_arguments, check_noise_arguments, loss_weights, nearest_timesteps, sample_timesteps
from training.provenance import command_line, describe_model

DEFAULT_CHECKPOINT_DIR = Path("~/.cache/pathgen/runs/generator").expanduser()
HELD_OUT_TILES = 256
HELD_OUT_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # noise-to-signal ratios sigma


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output-dir", default="assets/generator", help="Where save_pretrained writes the EMA model.")
    parser.add_argument("--checkpoint-dir", default=str(DEFAULT_CHECKPOINT_DIR),
                        help="Where the resumable checkpoint, log, EMA exports and sample grids go; outside the "
                             "work tree by default, so a fresh clone does not wipe a long run.")
    parser.add_argument("--held-out-of", default=None,
                        help="Only print the held-out val x0-MSE (the figure logged at every save) of this saved "
                             "generator folder, e.g. assets/generator, and exit.")
    parser.add_argument("--segment-minutes", type=float, default=None,
                        help="Stop (with a checkpoint) after this many minutes; rerun the same command to continue.")
    parser.add_argument("--max-steps", type=int, default=12000, help="Total optimisation steps.")
    parser.add_argument("--batch-size", type=int, default=64, help="Training batch size.")
    parser.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate after warm-up.")
    parser.add_argument("--warmup-steps", type=int, default=300, help="Linear learning-rate warm-up steps.")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                        help="After warm-up: hold the learning rate, or anneal it to zero at --max-steps.")
    parser.add_argument("--ema-decays", type=float, nargs="+", default=[0.999],
                        help="Final EMA decays (warmed up from 0), one EMA snapshot each; the first is exported to "
                             "--output-dir, every one to CHECKPOINT_DIR/ema-DECAY so the averaging length can be "
                             "chosen afterwards on a held-out metric.")
    add_noise_arguments(parser)
    parser.add_argument("--class-weights", nargs="+", default=None, metavar="CLASS=WEIGHT",
                        help="Draw training tiles of these classes WEIGHT times as often as the rest, e.g. "
                             "background=3 (default: every tile alike).")
    parser.add_argument("--exact-colour-weights", nargs="+", default=None, metavar="CLASS=WEIGHT",
                        help="Draw this class's exact-colour train tiles (at least half their pixels within 1 grey "
                             "level of one of the class's four most frequent train pixel values, as "
                             "training.brightness_modes counts them) WEIGHT times as often as its other tiles, e.g. "
                             "background=3 (default: no tile singled out).")
    parser.add_argument("--label-dropout", type=float, default=0.1, help="Fraction of labels replaced by the null class (for guidance).")
    parser.add_argument("--channels", type=int, nargs="+", default=list(UNetShape.block_out_channels),
                        help="UNet block widths, one per resolution (28, 14, 7).")
    parser.add_argument("--layers-per-block", type=int, default=UNetShape.layers_per_block, help="ResNet layers per UNet block.")
    parser.add_argument("--norm-groups", type=int, default=UNetShape.norm_num_groups, help="GroupNorm groups.")
    parser.add_argument("--init-from", default=None,
                        help="A saved generator folder (e.g. assets/generator) to fine-tune instead of starting from "
                             "random weights; its architecture replaces --channels/--layers-per-block/--norm-groups.")
    parser.add_argument("--save-every", type=int, default=500, help="Export, sample and checkpoint every N steps.")
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N training images (tests).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=has_fast_bf16(),
                        help="bfloat16 autocast on CPU (default: on only where the CPU has native bf16).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="Continue from the checkpoint in --checkpoint-dir if there is one.")
    args = parser.parse_args(argv)
    check_noise_arguments(parser, args)
    for flag, items in (("--class-weights", args.class_weights), ("--exact-colour-weights", args.exact_colour_weights)):
        try:
            parse_class_weights(items or [])
        except ValueError as error:
            parser.error(f"{flag}: {error}")
    return args


def parse_class_weights(items: list[str]) -> dict[int, float]:
    """`["background=3"]` -> `{1: 3.0}`, keyed by class index."""
    weights = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"expected CLASS=WEIGHT, not {item[:40]!r}")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise ValueError(f"{item[:40]!r} needs a positive number after '='")
        weights[resolve_class(name).index] = weight
    return weights


def draw_weights(labels: torch.Tensor, class_weights: dict[int, float],
                 tile_factors: torch.Tensor | None = None) -> torch.Tensor | None:
    """Per-tile draw weights for `torch.multinomial` (each tile's class weight times its factor), or None for
    uniform draws (the default, whose RNG use earlier runs replay)."""
    if not class_weights and tile_factors is None:
        return None
    per_class = torch.ones(NUM_CLASSES, dtype=torch.float64)
    for index, weight in class_weights.items():
        per_class[index] = weight
    weights = per_class[labels.long()]
    return weights if tile_factors is None else weights * tile_factors


def exact_colour_factors(images: torch.Tensor, labels: torch.Tensor,
                         weights: dict[int, float]) -> torch.Tensor | None:
    """Float64 [n]: WEIGHT for the exact-colour tiles of each class in `weights` (images uint8 [n, 3, 28, 28]; the
    class's colours are the most frequent values among its own tiles here), 1 for every other tile; None without
    weights."""
    if not weights:
        return None
    factors = torch.ones(len(labels), dtype=torch.float64)
    for index, weight in weights.items():
        members = torch.nonzero(labels.flatten() == index).flatten()
        tiles = images[members].permute(0, 2, 3, 1).numpy()
        flags = torch.from_numpy(exact_colour_tiles(tiles, frequent_colours(tiles, EXACT_COLOURS), EXACT_TOLERANCE,
                                                    EXACT_MIN_SHARE))
        factors[members[flags]] = weight
        print(f"{TISSUE_CLASSES[index].key}: {int(flags.sum())} of {len(members)} train tiles are exact-colour tiles, "
              f"drawn {weight:g} times as often", flush=True)
    return factors


def load_data(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_split("train", args.data_dir, args.download)
    images, labels = images[: args.train_limit], labels[: args.train_limit]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def build_model(args: argparse.Namespace) -> UNet2DModel:
    if args.init_from is None:
        return build_unet(UNetShape(block_out_channels=tuple(args.channels), layers_per_block=args.layers_per_block,
                                    norm_num_groups=args.norm_groups))
    unet_dir = Path(args.init_from) / "unet"
    if not unet_dir.is_dir():
        raise FileNotFoundError(f"--init-from {args.init_from}: no unet/ folder there; pass a folder that "
                                "PixelDiffusionGenerator.save_pretrained wrote, such as assets/generator.")
    return UNet2DModel.from_pretrained(unet_dir, torch_dtype=torch.float32)


def adopt_architecture(args: argparse.Namespace, unet: UNet2DModel) -> None:
    """Sets the architecture flags to the model's own, so that an --init-from run records the shape it trained
    rather than the flags' defaults, which --init-from ignores."""
    args.channels = list(unet.config.block_out_channels)
    args.layers_per_block = unet.config.layers_per_block
    args.norm_groups = unet.config.norm_num_groups


def parent_record(init_from: str | None) -> dict | None:
    """The model a fine-tuning run started from and that model's own training record, so that an export's
    training.json carries the whole history of its weights, segment by segment."""
    if init_from is None:
        return None
    record_file = Path(init_from) / "training.json"
    training = json.loads(record_file.read_text()) if record_file.is_file() else None
    return {**describe_model(init_from), "training": training}


def learning_rate_factor(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.lr_schedule == "constant":
        return 1.0
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def diffusion_loss(unet, scheduler, clean: torch.Tensor, labels: torch.Tensor, args, generator) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = sample_timesteps(scheduler, len(clean), args, generator)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = scheduler.get_velocity(clean, noise, timesteps)
    weight = loss_weights(scheduler, timesteps, args.min_snr_gamma, args.loss_weighting, args.sigma_data)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        prediction = unet(noisy, timesteps, class_labels=labels).sample
    per_sample = (prediction.float() - target).pow(2).mean(dim=(1, 2, 3))
    return (weight * per_sample).mean()


@torch.no_grad()
def held_out_loss(unet, scheduler, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> dict:
    """Mean squared error of the class-conditional x0 estimate on fixed val tiles, noise and levels.

    The same tiles, noise and levels for every model and recipe (no weighting), so the figure compares
    training runs; `per_level` keys are the noise-to-signal ratios sigma. The errors span two orders of
    magnitude from sigma 0.02 to 5, so `mean` is mostly the noisiest levels; `geometric_mean` counts a relative
    change at every level alike, the low-noise levels (fine texture) included."""
    generator = torch.Generator().manual_seed(1234)
    clean = images.float() / 127.5 - 1
    per_level = {}
    for sigma in HELD_OUT_LEVELS:
        timestep = nearest_timesteps(scheduler, torch.tensor([sigma]))
        noise = torch.randn(clean.shape, generator=generator)
        errors = []
        for start in range(0, len(clean), batch_size):
            x0, eps, y = clean[start:start + batch_size], noise[start:start + batch_size], labels[start:start + batch_size]
            t = timestep.expand(len(x0))
            noisy = scheduler.add_noise(x0, eps, t)
            v = unet(noisy, t, class_labels=y).sample.float()
            alpha_bar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
            estimate = alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * v
            errors.append((estimate - x0).pow(2).mean(dim=(1, 2, 3)))
        per_level[str(sigma)] = float(torch.cat(errors).mean())
    values = np.array(list(per_level.values()))
    return {"mean": float(values.mean()), "geometric_mean": float(np.exp(np.log(values).mean())),
            "per_level": per_level}


def held_out_tiles(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_split("val", args.data_dir, args.download)
    order = np.random.default_rng(0).permutation(len(images))[:HELD_OUT_TILES]
    return torch.from_numpy(images[order]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels[order])


@torch.no_grad()
def update_ema(ema, model, step: int, decay: float, warmup: bool = True) -> None:
    """Moves `ema` toward `model`. The warm-up (a short average early on) forgets a random initialisation fast;
    it also makes every decay the same average until (1 + step) / (10 + step) passes it (step 9000 for 0.999),
    so a fine-tune, whose start is already a trained model, runs without it."""
    rate = min(decay, (1 + step) / (10 + step)) if warmup else decay
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param, 1 - rate)


def save_sample_grid(generator: PixelDiffusionGenerator, path: Path, per_class: int = 8) -> None:
    rows = [np.concatenate(list(generator.generate(c, per_class, seed=c)), axis=1) for c in range(NUM_CLASSES)]
    Image.fromarray(np.concatenate(rows, axis=0)).resize((per_class * 84, NUM_CLASSES * 84), Image.NEAREST).save(path)


class TrainingState:
    """Everything a segment needs to continue where the previous one stopped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.unet = build_model(args)
        self.emas = [copy.deepcopy(self.unet).eval().requires_grad_(False) for _ in args.ema_decays]
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=args.lr, weight_decay=0.0)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: learning_rate_factor(s, args))
        self.generator = torch.Generator().manual_seed(args.seed)
        self.step, self.elapsed_s, self.segments = 0, 0.0, []
        self.parent = parent_record(args.init_from)  # read at the start; the folder may be replaced later

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        torch.save({"model": self.unet.state_dict(), "emas": [ema.state_dict() for ema in self.emas],
                    "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                    "generator": self.generator.get_state(), "step": self.step, "elapsed_s": self.elapsed_s,
                    "segments": self.segments, "parent": self.parent}, temporary)
        temporary.replace(path)  # a segment killed mid-write keeps the previous checkpoint

    def load(self, path: Path) -> None:
        checkpoint = torch.load(path, weights_only=False)
        self.unet.load_state_dict(checkpoint["model"])
        saved_emas = checkpoint.get("emas") or [checkpoint["ema"]]
        if len(saved_emas) != len(self.emas):
            raise ValueError(f"{path} holds {len(saved_emas)} EMA snapshots but --ema-decays names {len(self.emas)}; "
                             "resume with the decays the run started with.")
        for ema, state in zip(self.emas, saved_emas, strict=True):
            ema.load_state_dict(state)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.lr_schedule.load_state_dict(checkpoint["lr_schedule"])
        self.generator.set_state(checkpoint["generator"])
        self.step, self.elapsed_s = checkpoint["step"], checkpoint["elapsed_s"]
        self.segments = checkpoint.get("segments", [])
        self.parent = checkpoint.get("parent", self.parent)


def train_step(state: TrainingState, train_x: torch.Tensor, train_y: torch.Tensor, scheduler, args,
               tile_weights: torch.Tensor | None = None) -> float:
    if tile_weights is None:
        index = torch.randint(0, len(train_x), (args.batch_size,), generator=state.generator)
    else:
        index = torch.multinomial(tile_weights, args.batch_size, replacement=True, generator=state.generator)
    clean = random_dihedral(train_x[index].float() / 127.5 - 1, state.generator)
    labels = train_y[index].clone()
    labels[torch.rand(len(labels), generator=state.generator) < args.label_dropout] = NUM_CLASSES
    loss = diffusion_loss(state.unet, scheduler, clean, labels, args, state.generator)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(state.unet.parameters(), 1.0)
    state.optimizer.step()
    state.lr_schedule.step()
    state.step += 1
    for ema, decay in zip(state.emas, args.ema_decays, strict=True):
        update_ema(ema, state.unet, state.step, decay, warmup=not args.init_from)
    return loss.item()


def inherited_profiles(init_from: str | None) -> SamplingProfiles | None:
    """A fine-tuned model keeps the sampling profiles of the folder it started from, each sampling with the
    trained network: a profile's or a class's network of its own (e.g. unet-bank/) is not trained here and not
    exported."""
    if init_from is None:
        return None
    profiles = SamplingProfiles.from_config(read_generator_config(init_from))
    return SamplingProfiles(**{name: replace(profiles.get(name), model="", class_models={}) for name in PROFILES})


def export_snapshots(state: TrainingState, scheduler, held_out, args, checkpoint_dir: Path) -> dict:
    """Exports every EMA (the first also to --output-dir) and returns their held-out figures (`held_out_loss`)."""
    losses = {}
    profiles = inherited_profiles(args.init_from)
    for index, (ema, decay) in enumerate(zip(state.emas, args.ema_decays, strict=True)):
        exported = PixelDiffusionGenerator(ema, dict(scheduler.config), profiles)
        exported.save_pretrained(checkpoint_dir / f"ema-{decay}")
        if index == 0:
            exported.save_pretrained(args.output_dir)
            save_sample_grid(exported, checkpoint_dir / f"samples_{state.step:06d}.png")
        losses[str(decay)] = held_out_loss(ema, scheduler, *held_out)
    return losses


def write_training_record(state: TrainingState, args: argparse.Namespace, running_loss: float | None) -> None:
    record = {"steps": state.step, "images_seen": state.step * args.batch_size,
              "train_wall_time_min": state.elapsed_s / 60, "threads": torch.get_num_threads(),
              "final_loss_ema": running_loss, "exported_ema_decay": args.ema_decays[0],
              "segments": state.segments, "initialised_from": state.parent, "args": vars(args)}
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    Path(args.output_dir, "training.json").write_text(json.dumps(record, indent=2) + "\n")


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    held_out = held_out_tiles(args)
    scheduler = build_noise_scheduler()
    if args.held_out_of:
        unet = PixelDiffusionGenerator.from_pretrained(args.held_out_of).pipeline.unet
        print(json.dumps({"generator": args.held_out_of, "held_out_x0_mse": held_out_loss(unet, scheduler, *held_out)}))
        return
    checkpoint_dir = Path(args.checkpoint_dir).expanduser()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_data(args)
    tile_weights = draw_weights(train_y, parse_class_weights(args.class_weights or []),
                                exact_colour_factors(train_x, train_y, parse_class_weights(args.exact_colour_weights or [])))
    state = TrainingState(args)
    if args.init_from:
        adopt_architecture(args, state.unet)
    checkpoint_file = checkpoint_dir / "checkpoint.pt"
    if args.resume and checkpoint_file.is_file():
        state.load(checkpoint_file)
        print(f"resumed at step {state.step}", flush=True)
    print(f"UNet parameters: {sum(p.numel() for p in state.unet.parameters()) / 1e6:.2f}M, "
          f"train images {len(train_x)}", flush=True)

    segment = {"command": command_line("training.train_generator", args),
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step_start": state.step}
    segment_started = time.time()
    deadline = math.inf if args.segment_minutes is None else segment_started + 60 * args.segment_minutes
    log = (checkpoint_dir / "log.jsonl").open("a")
    progress = tqdm(total=args.max_steps, initial=state.step, desc="generator", mininterval=30)
    running = None
    state.unet.train()
    while state.step < args.max_steps:
        step_started = time.time()
        loss = train_step(state, train_x, train_y, scheduler, args, tile_weights)
        state.elapsed_s += time.time() - step_started
        running = loss if running is None else 0.98 * running + 0.02 * loss
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", refresh=False)
        out_of_time = time.time() >= deadline
        if state.step % args.save_every == 0 or state.step == args.max_steps or out_of_time:
            losses = export_snapshots(state, scheduler, held_out, args, checkpoint_dir)
            segment.update(step_end=state.step, images_seen=(state.step - segment["step_start"]) * args.batch_size,
                           wall_min=round((time.time() - segment_started) / 60, 2))
            state.segments = [s for s in state.segments if s.get("started") != segment["started"]] + [dict(segment)]
            state.save(checkpoint_file)
            record = {"step": state.step, "loss_ema": running, "train_min": state.elapsed_s / 60,
                      "held_out_x0_mse": {decay: loss["mean"] for decay, loss in losses.items()},
                      "held_out_x0_mse_geometric": {decay: loss["geometric_mean"] for decay, loss in losses.items()},
                      "held_out_x0_mse_per_level": {decay: loss["per_level"] for decay, loss in losses.items()}}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
            write_training_record(state, args, running)
        if out_of_time:
            print(f"segment time is up at step {state.step}; rerun the same command to continue", flush=True)
            break


if __name__ == "__main__":
    main(parse_args())
