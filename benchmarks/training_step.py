"""Seconds per optimiser step of the generator's training, per execution mode, and each mode's ratio to eager.

    python -m benchmarks.training_step --channels 64 128 128 --layers-per-block 2 --threads 2 \
        --output assets/metrics/training_step_benchmark.json

One step is what `training.train_generator` does per batch (the EDM-weighted v-prediction loss on random
tiles and noise levels, backward, clipping, AdamW), timed after warm-up steps that absorb compilation.
Modes: `eager`; `channels-last` (NHWC memory format, which oneDNN's convolutions may prefer); `compile`
(torch.compile's inductor backend, which fuses the GroupNorm/SiLU/add chains that dominate a small UNet on a
CPU). Precision follows `--bf16` as in training (default: on only where the CPU has native bf16). A ratio
below 1 means that mode learns the same recipe in less CPU time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.utils import cpu_description
from pathgen.cpu import has_fast_bf16
from pathgen.data import NUM_CLASSES
from pathgen.generator import UNetShape, build_noise_scheduler, build_unet
from training import train_generator
from training.provenance import command_line

MODES = ("eager", "channels-last", "compile")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=list(UNetShape.block_out_channels),
                        help="UNet block widths, one per resolution (28, 14, 7).")
    parser.add_argument("--layers-per-block", type=int, default=UNetShape.layers_per_block,
                        help="ResNet layers per UNet block.")
    parser.add_argument("--batch-size", type=int, default=64, help="Training batch size.")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="Execution modes to time.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed steps per mode (compilation happens here).")
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per mode (the median is reported).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=has_fast_bf16(),
                        help="bfloat16 autocast, as in training (default: on only where the CPU has native bf16).")
    parser.add_argument("--output", default=None, help="Also write the figures to this JSON file.")
    return parser.parse_args(argv)


def loss_arguments(bf16: bool) -> argparse.Namespace:
    """The long run's recipe, parsed by train_generator itself so that its defaults have one home."""
    return train_generator.parse_args(["--noise-sampling", "lognormal", "--loss-weighting", "edm",
                                       "--bf16" if bf16 else "--no-bf16"])


def time_mode(mode: str, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    unet = build_unet(UNetShape(block_out_channels=tuple(args.channels), layers_per_block=args.layers_per_block))
    memory_format = torch.channels_last if mode == "channels-last" else torch.contiguous_format
    unet = unet.to(memory_format=memory_format).train()
    model = torch.compile(unet) if mode == "compile" else unet
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    scheduler, recipe = build_noise_scheduler(), loss_arguments(args.bf16)
    generator = torch.Generator().manual_seed(0)
    clean = (torch.rand(args.batch_size, 3, 28, 28, generator=generator) * 2 - 1).to(memory_format=memory_format)
    labels = torch.randint(0, NUM_CLASSES + 1, (args.batch_size,), generator=generator)
    durations = []
    for index in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = train_generator.diffusion_loss(model, scheduler, clean, labels, recipe, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        if index >= args.warmup:
            durations.append(time.perf_counter() - started)
    return {"median_s_per_step": statistics.median(durations), "min_s_per_step": min(durations),
            "images_per_hour": args.batch_size * 3600 / statistics.median(durations)}


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    parameters = sum(p.numel() for p in build_unet(UNetShape(tuple(args.channels), args.layers_per_block)).parameters())
    report = {"command": command_line("benchmarks.training_step", args), "parameters": parameters,
              "threads": torch.get_num_threads(), **cpu_description(), "bf16": args.bf16, "batch_size": args.batch_size,
              "modes": {}}
    for mode in args.modes:
        report["modes"][mode] = time_mode(mode, args)
        print(f"{mode:>14}: {report['modes'][mode]['median_s_per_step']:.3f} s/step", flush=True)
    if "eager" in report["modes"]:
        eager = report["modes"]["eager"]["median_s_per_step"]
        for mode, figures in report["modes"].items():
            figures["ratio_to_eager"] = figures["median_s_per_step"] / eager
            print(f"{mode:>14}: {figures['ratio_to_eager']:.2f} x eager's time per step")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main(parse_args())
