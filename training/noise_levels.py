"""Where diffusion training spends its effort: the noise levels a batch draws and the weight each one gets.

    python -m training.noise_levels --noise-sampling lognormal --uniform-share 0.3

`train_generator` trains with these draws and weights; run as a script, this prints the share of `--draws`
timesteps that land in each noise-level band (edges `--band-edges`, sigma = sqrt((1 - alpha_bar) / alpha_bar)),
so a recipe's spread over the noise levels can be read before any training time is spent on it. Timesteps are
drawn in one of two ways: uniformly over the scheduler's timesteps, or as noise levels drawn log-normally (EDM,
Karras et al., 2022) and mapped to the nearest timestep, optionally with a share of each batch drawn uniformly.
"""

from __future__ import annotations

import argparse
from itertools import pairwise

import torch

from pathgen.generator import build_noise_scheduler, edm_sigmas


def add_noise_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noise-sampling", choices=["uniform", "lognormal"], default="uniform",
                        help="Timesteps drawn uniformly, or noise levels sigma drawn log-normally (EDM) and mapped "
                             "to the nearest timestep.")
    parser.add_argument("--uniform-share", type=float, default=0.0,
                        help="With --noise-sampling lognormal, this fraction of each batch draws its timesteps "
                             "uniformly instead, so the noisy end, where a tile's overall layout and brightness are "
                             "chosen, is trained more often than the log-normal alone trains it.")
    parser.add_argument("--p-mean", type=float, default=-1.2, help="Mean of log(sigma) for --noise-sampling lognormal.")
    parser.add_argument("--p-std", type=float, default=1.2, help="Std of log(sigma) for --noise-sampling lognormal.")
    parser.add_argument("--loss-weighting", choices=["min-snr", "edm"], default="min-snr",
                        help="min-snr: --min-snr-gamma's weights; edm: EDM's lambda(sigma) with --sigma-data, "
                             "expressed on the v error.")
    parser.add_argument("--sigma-data", type=float, default=0.5, help="Data standard deviation for the EDM weighting.")
    parser.add_argument("--min-snr-gamma", type=float, default=5.0,
                        help="Min-SNR loss weighting gamma; 0: no cap, i.e. epsilon-prediction's weighting snr/(snr+1), "
                             "which weights the low-noise steps that draw fine texture up to 5000 times more.")


def check_noise_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses (through `parser.error`) settings that add_noise_arguments' flags cannot mean together."""
    if not 0 <= args.uniform_share <= 1:
        parser.error(f"--uniform-share must lie in [0, 1], got {args.uniform_share}")
    if args.uniform_share and args.noise_sampling != "lognormal":
        parser.error("--uniform-share mixes uniform draws into --noise-sampling lognormal; "
                     "with --noise-sampling uniform every draw is uniform already")


def noise_levels(scheduler) -> torch.Tensor:
    """sigma_t for every training timestep (increasing in t)."""
    return edm_sigmas(scheduler.alphas_cumprod)


def nearest_timesteps(scheduler, sigmas: torch.Tensor) -> torch.Tensor:
    log_levels = noise_levels(scheduler).log()
    upper = torch.bucketize(sigmas.log(), log_levels).clamp(1, len(log_levels) - 1)
    closer_below = (sigmas.log() - log_levels[upper - 1]).abs() < (log_levels[upper] - sigmas.log()).abs()
    return torch.where(closer_below, upper - 1, upper)


def uniform_timesteps(scheduler, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=generator)


def sample_timesteps(scheduler, n: int, args: argparse.Namespace, generator: torch.Generator) -> torch.Tensor:
    """n training timesteps as add_noise_arguments' flags in `args` ask. The order of draws from `generator` is
    part of a run's identity: a resumed run repeats it, so it must not change for existing settings."""
    if args.noise_sampling == "uniform":
        return uniform_timesteps(scheduler, n, generator)
    sigmas = (args.p_mean + args.p_std * torch.randn(n, generator=generator)).exp()
    timesteps = nearest_timesteps(scheduler, sigmas)
    if args.uniform_share > 0:
        uniform = uniform_timesteps(scheduler, n, generator)
        from_uniform = torch.rand(n, generator=generator) < args.uniform_share
        timesteps = torch.where(from_uniform, uniform, timesteps)
    return timesteps


def loss_weights(scheduler, timesteps: torch.Tensor, min_snr_gamma: float, weighting: str = "min-snr",
                 sigma_data: float = 0.5) -> torch.Tensor:
    """Per-sample weights of the v-prediction MSE.

    min-snr: min(snr, gamma) / (snr + 1) (Hang et al., 2023); gamma 0 gives snr/(snr+1), which makes the weighted
    v error equal the epsilon error, since eps - eps_hat = sqrt(alpha_bar) (v - v_hat).
    edm: EDM's lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 on the x0 error; as x0 - x0_hat =
    sqrt(1 - alpha_bar) (v - v_hat) = sigma / sqrt(1 + sigma^2) (v - v_hat), that is
    (sigma^2 + sd^2) / (sd^2 (1 + sigma^2)) on the v error.
    """
    alpha_bar = scheduler.alphas_cumprod[timesteps]
    snr = alpha_bar / (1 - alpha_bar)
    if weighting == "edm":
        sigma_squared = 1 / snr
        return (sigma_squared + sigma_data**2) / (sigma_data**2 * (1 + sigma_squared))
    capped = snr.clamp(max=min_snr_gamma) if min_snr_gamma > 0 else snr
    return capped / (snr + 1)


def band_shares(sigmas: torch.Tensor, edges: list[float]) -> list[tuple[str, float]]:
    """(band label, fraction of `sigmas` in it) for the bands below, between and above the sorted `edges`."""
    bounds = [0.0, *sorted(edges), float("inf")]
    shares = []
    for low, high in pairwise(bounds):
        if low == 0:
            label = f"sigma < {high:g}"
        elif high == float("inf"):
            label = f"sigma >= {low:g}"
        else:
            label = f"{low:g} <= sigma < {high:g}"
        shares.append((label, float(((sigmas >= low) & (sigmas < high)).float().mean())))
    return shares


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_noise_arguments(parser)
    parser.add_argument("--draws", type=int, default=100_000, help="Timesteps to draw (more: steadier shares).")
    parser.add_argument("--band-edges", type=float, nargs="+", default=[0.1, 1.0, 2.0],
                        help="Noise levels sigma at which the printed bands split.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the draws.")
    args = parser.parse_args(argv)
    check_noise_arguments(parser, args)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")
    if any(edge <= 0 for edge in args.band_edges):
        parser.error(f"--band-edges are noise levels and must be positive, got {args.band_edges}")
    return args


def main(args: argparse.Namespace) -> list[tuple[str, float]]:
    scheduler = build_noise_scheduler()
    drawn = sample_timesteps(scheduler, args.draws, args, torch.Generator().manual_seed(args.seed))
    shares = band_shares(noise_levels(scheduler)[drawn], args.band_edges)
    print(f"{args.draws} draws, --noise-sampling {args.noise_sampling}, --uniform-share {args.uniform_share:g}"
          + (f", --p-mean {args.p_mean:g} --p-std {args.p_std:g}" if args.noise_sampling == "lognormal" else ""))
    for label, share in shares:
        print(f"  {label:<22} {share:7.1%}")
    return shares


if __name__ == "__main__":
    main(parse_args())
