"""Train the class-conditional pixel diffusion model on PathMNIST train.

    python -m training.train_generator --data-dir ../shared/data --output-dir assets/generator

v-prediction with min-SNR-5 loss weighting (Hang et al., 2023) converges several times faster
than plain epsilon-prediction, which matters on a 2-core CPU. Every `--save-every` steps the
EMA weights are exported with `save_pretrained`, a sample grid is written, and a resumable
checkpoint (model, EMA, optimiser, step, RNG, args) replaces the previous one.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel
from PIL import Image
from tqdm import tqdm

from pathgen.augment import random_dihedral
from pathgen.cpu import has_fast_bf16
from pathgen.data import NUM_CLASSES, add_data_arguments, load_split
from pathgen.generator import PixelDiffusionGenerator, SamplingDefaults, UNetShape, build_noise_scheduler, build_unet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output-dir", default="assets/generator", help="Where save_pretrained writes the EMA model.")
    parser.add_argument("--checkpoint-dir", default="runs/generator", help="Where the resumable checkpoint, log and sample grids go.")
    parser.add_argument("--max-steps", type=int, default=12000, help="Total optimisation steps.")
    parser.add_argument("--batch-size", type=int, default=64, help="Training batch size.")
    parser.add_argument("--lr", type=float, default=5e-4, help="AdamW learning rate after warm-up.")
    parser.add_argument("--warmup-steps", type=int, default=300, help="Linear learning-rate warm-up steps.")
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                        help="After warm-up: hold the learning rate, or anneal it to zero at --max-steps.")
    parser.add_argument("--ema-decay", type=float, default=0.999, help="Final EMA decay (warmed up from 0).")
    parser.add_argument("--min-snr-gamma", type=float, default=5.0,
                        help="Min-SNR loss weighting gamma; 0: no cap, i.e. epsilon-prediction's weighting snr/(snr+1), "
                             "which weights the low-noise steps that draw fine texture up to 5000 times more.")
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
    return parser.parse_args(argv)


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


def learning_rate_factor(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup_steps:
        return (step + 1) / args.warmup_steps
    if args.lr_schedule == "constant":
        return 1.0
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def loss_weights(scheduler, timesteps: torch.Tensor, min_snr_gamma: float) -> torch.Tensor:
    """Per-sample weights of the v-prediction MSE: min-SNR (Hang et al., 2023), or with gamma 0 snr/(snr+1),
    which makes the weighted v error equal the epsilon error, since eps - eps_hat = sqrt(alpha_bar) (v - v_hat)."""
    alpha_bar = scheduler.alphas_cumprod[timesteps]
    snr = alpha_bar / (1 - alpha_bar)
    capped = snr.clamp(max=min_snr_gamma) if min_snr_gamma > 0 else snr
    return capped / (snr + 1)


def diffusion_loss(unet, scheduler, clean: torch.Tensor, labels: torch.Tensor, args, generator) -> torch.Tensor:
    noise = torch.randn(clean.shape, generator=generator)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(clean),), generator=generator)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    target = scheduler.get_velocity(clean, noise, timesteps)
    weight = loss_weights(scheduler, timesteps, args.min_snr_gamma)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        prediction = unet(noisy, timesteps, class_labels=labels).sample
    per_sample = (prediction.float() - target).pow(2).mean(dim=(1, 2, 3))
    return (weight * per_sample).mean()


@torch.no_grad()
def update_ema(ema, model, step: int, decay: float) -> None:
    rate = min(decay, (1 + step) / (10 + step))
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param, 1 - rate)


def save_sample_grid(generator: PixelDiffusionGenerator, path: Path, per_class: int = 8) -> None:
    rows = [np.concatenate(list(generator.generate(c, per_class, seed=c)), axis=1) for c in range(NUM_CLASSES)]
    Image.fromarray(np.concatenate(rows, axis=0)).resize((per_class * 84, NUM_CLASSES * 84), Image.NEAREST).save(path)


def main(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    checkpoint_dir = Path(args.checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_data(args)
    unet = build_model(args)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    scheduler = build_noise_scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_factor(s, args))
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    checkpoint_file = checkpoint_dir / "checkpoint.pt"
    if args.resume and checkpoint_file.is_file():
        checkpoint = torch.load(checkpoint_file, weights_only=False)
        unet.load_state_dict(checkpoint["model"])
        ema.load_state_dict(checkpoint["ema"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        lr_schedule.load_state_dict(checkpoint["lr_schedule"])
        generator.set_state(checkpoint["generator"])
        step, elapsed = checkpoint["step"], checkpoint["elapsed_s"]
        print(f"resumed at step {step}", flush=True)
    print(f"UNet parameters: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M, train images {len(train_x)}", flush=True)

    started = time.time() - elapsed
    log = (checkpoint_dir / "log.jsonl").open("a")
    progress = tqdm(total=args.max_steps, initial=step, desc="generator", mininterval=30)
    running = None
    unet.train()
    while step < args.max_steps:
        index = torch.randint(0, len(train_x), (args.batch_size,), generator=generator)
        clean = random_dihedral(train_x[index].float() / 127.5 - 1, generator)
        labels = train_y[index].clone()
        labels[torch.rand(len(labels), generator=generator) < args.label_dropout] = NUM_CLASSES
        loss = diffusion_loss(unet, scheduler, clean, labels, args, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        step += 1
        update_ema(ema, unet, step, args.ema_decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", refresh=False)
        if step % args.save_every == 0 or step == args.max_steps:
            exported = PixelDiffusionGenerator(ema, dict(scheduler.config), SamplingDefaults())
            exported.save_pretrained(args.output_dir)
            save_sample_grid(exported, checkpoint_dir / f"samples_{step:06d}.png")
            torch.save({"model": unet.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                        "lr_schedule": lr_schedule.state_dict(), "generator": generator.get_state(), "step": step,
                        "elapsed_s": time.time() - started, "args": vars(args)}, checkpoint_file)
            record = {"step": step, "loss_ema": running, "elapsed_min": (time.time() - started) / 60}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(json.dumps(record), flush=True)
    Path(args.output_dir, "training.json").write_text(json.dumps(
        {"steps": step, "train_wall_time_min": (time.time() - started) / 60, "threads": torch.get_num_threads(),
         "final_loss_ema": running, "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main(parse_args())
