import numpy as np
import pytest
import torch

from pathgen.generator import build_noise_scheduler
from training import noise_levels, train_generator


def test_uncapped_loss_weights_give_the_epsilon_error_and_min_snr_caps_the_low_noise_steps():
    scheduler = build_noise_scheduler()
    generator = torch.Generator().manual_seed(0)
    clean, noise = torch.rand(6, 3, 28, 28, generator=generator) * 2 - 1, torch.randn(6, 3, 28, 28, generator=generator)
    timesteps = torch.tensor([0, 20, 83, 300, 700, 999])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    velocity = scheduler.get_velocity(clean, noise, timesteps)
    predicted = velocity + 0.1 * torch.randn(velocity.shape, generator=generator)
    alpha, sigma = (scheduler.alphas_cumprod[timesteps] ** 0.5).view(-1, 1, 1, 1), \
        ((1 - scheduler.alphas_cumprod[timesteps]) ** 0.5).view(-1, 1, 1, 1)
    predicted_noise = sigma * noisy + alpha * predicted  # what a v-prediction says about the noise
    epsilon_error = (predicted_noise - noise).pow(2).mean(dim=(1, 2, 3))
    v_error = (predicted - velocity).pow(2).mean(dim=(1, 2, 3))
    uncapped = noise_levels.loss_weights(scheduler, timesteps, 0.0)
    torch.testing.assert_close(uncapped * v_error, epsilon_error, rtol=1e-4, atol=1e-6)
    min_snr = noise_levels.loss_weights(scheduler, timesteps, 5.0)
    assert (min_snr[:3] < 0.11 * uncapped[:3]).all()  # the low-noise steps, where min-SNR-5 gives < 11%
    torch.testing.assert_close(min_snr[3:], uncapped[3:])  # at SNR below 5 the two agree


def test_edm_weights_on_the_v_error_equal_edm_lambda_on_the_x0_error():
    scheduler = build_noise_scheduler()
    generator = torch.Generator().manual_seed(1)
    clean, noise = torch.rand(5, 3, 28, 28, generator=generator) * 2 - 1, torch.randn(5, 3, 28, 28, generator=generator)
    timesteps = torch.tensor([3, 60, 250, 600, 990])
    noisy = scheduler.add_noise(clean, noise, timesteps)
    velocity = scheduler.get_velocity(clean, noise, timesteps)
    predicted = velocity + 0.1 * torch.randn(velocity.shape, generator=generator)
    alpha_bar = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    x0_error = (alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * predicted - clean).pow(2).mean(dim=(1, 2, 3))
    sigma = noise_levels.noise_levels(scheduler)[timesteps]
    edm_lambda = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    weights = noise_levels.loss_weights(scheduler, timesteps, 5.0, "edm", 0.5)
    v_error = (predicted - velocity).pow(2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(weights * v_error, edm_lambda * x0_error, rtol=1e-3, atol=1e-6)


def test_log_normal_sampling_maps_noise_levels_to_the_nearest_timestep():
    scheduler = build_noise_scheduler()
    levels = noise_levels.noise_levels(scheduler)
    for t in (0, 1, 83, 500, 998, 999):
        assert int(noise_levels.nearest_timesteps(scheduler, levels[t:t + 1] * 1.0001)) == t
    args = noise_levels.parse_args(["--noise-sampling", "lognormal"])
    drawn = noise_levels.sample_timesteps(scheduler, 20000, args, torch.Generator().manual_seed(0))
    median_sigma = float(levels[drawn].median())
    assert abs(np.log(median_sigma) - args.p_mean) < 0.05  # the log-normal's median is exp(P_mean)


def test_uniform_share_moves_that_fraction_of_draws_to_the_noisy_end():
    scheduler = build_noise_scheduler()
    levels = noise_levels.noise_levels(scheduler)

    def noisy_fraction(*flags: str) -> float:
        args = noise_levels.parse_args(["--noise-sampling", "lognormal", *flags])
        drawn = noise_levels.sample_timesteps(scheduler, 40000, args, torch.Generator().manual_seed(0))
        return float((levels[drawn] > 1.0).float().mean())

    log_normal = noisy_fraction()
    uniform = float((levels > 1.0).float().mean())  # a uniform draw's chance of sigma > 1
    mixed = noisy_fraction("--uniform-share", "0.3")
    assert abs(mixed - (0.7 * log_normal + 0.3 * uniform)) < 0.01
    assert mixed > log_normal + 0.1


@pytest.mark.parametrize("flags", [["--noise-sampling", "lognormal", "--uniform-share", "1.5"],
                                   ["--noise-sampling", "lognormal", "--uniform-share", "-0.1"],
                                   ["--noise-sampling", "uniform", "--uniform-share", "0.3"]])
@pytest.mark.parametrize("script", [noise_levels, train_generator])
def test_uniform_share_refuses_values_that_mean_nothing(script, flags):
    with pytest.raises(SystemExit):
        script.parse_args(flags)


def test_a_mixture_draws_the_uniform_timesteps_of_the_same_seed_where_it_mixes():
    """The mixture's uniform draws are the uniform recipe's next draws after the log-normal ones, so a resumed run
    with a given share repeats the exact timesteps of its first segment."""
    scheduler = build_noise_scheduler()
    mixed = noise_levels.sample_timesteps(
        scheduler, 500, noise_levels.parse_args(["--noise-sampling", "lognormal", "--uniform-share", "0.5"]),
        torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    torch.randn(500, generator=replay)
    uniform = noise_levels.uniform_timesteps(scheduler, 500, replay)
    chosen = torch.rand(500, generator=replay) < 0.5
    assert torch.equal(mixed[chosen], uniform[chosen])
    assert 200 < int(chosen.sum()) < 300


def test_band_shares_split_at_the_edges_and_sum_to_one():
    sigmas = torch.tensor([0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 7.0, 0.01])
    shares = noise_levels.band_shares(sigmas, [2.0, 0.1, 1.0])
    assert [label for label, _ in shares] == ["sigma < 0.1", "0.1 <= sigma < 1", "1 <= sigma < 2", "sigma >= 2"]
    assert [share for _, share in shares] == [0.25, 0.25, 0.25, 0.25]


def test_the_script_prints_each_band_and_its_uniform_share_matches_the_scheduler(capsys):
    shares = dict(noise_levels.main(noise_levels.parse_args(["--draws", "20000", "--band-edges", "2"])))
    printed = capsys.readouterr().out
    assert "sigma >= 2" in printed and "20000 draws" in printed
    expected = float((noise_levels.noise_levels(build_noise_scheduler()) >= 2).float().mean())
    assert abs(shares["sigma >= 2"] - expected) < 0.01


@pytest.mark.parametrize("flags", [["--draws", "0"], ["--band-edges", "0", "1"], ["--band-edges", "-1"]])
def test_the_script_refuses_settings_it_cannot_draw(flags):
    with pytest.raises(SystemExit):
        noise_levels.parse_args(flags)
