import json

import numpy as np
import pytest
import torch

from pathgen.discriminator import (
    DiscriminatorConfig,
    NoisyTileDiscriminator,
    corrected_tiles,
    logit_gradient,
    vp_noise,
)
from pathgen.generation import SamplingDefaults, SamplingProfiles, load_generator
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet
from pathgen.lora import LoraGenerator
from training import train_discriminator, tune_sampling

TINY = DiscriminatorConfig(channels=(8, 16, 16), embed_dim=16)


class PrefersBright(torch.nn.Module):
    """A fixed 'discriminator' whose logit is the sum of the pixel values: guidance by it must brighten tiles."""

    def forward(self, x_t, sigma, labels):
        return x_t.flatten(1).sum(dim=1)


def tiny_generator(discriminator=None, weight: float = 0.0) -> PixelDiffusionGenerator:
    torch.manual_seed(0)
    unet = build_unet(UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8))
    settings = SamplingDefaults(steps=6, guidance=1.0, solver="sde-dpmsolver++", noise_spacing="karras",
                                discriminator_guidance=weight)
    return PixelDiffusionGenerator(unet, dict(build_noise_scheduler().config), SamplingProfiles(settings, settings),
                                   bf16=False, discriminator=discriminator)


def test_discriminator_round_trips_and_a_broken_folder_names_the_rebuild_command(tmp_path):
    torch.manual_seed(0)
    model = NoisyTileDiscriminator(TINY).eval()
    model.save_pretrained(tmp_path / "d")
    loaded = NoisyTileDiscriminator.from_pretrained(tmp_path / "d")
    x, sigma, labels = torch.randn(4, 3, 28, 28), torch.tensor([0.01, 0.1, 1.0, 8.0]), torch.tensor([0, 3, 5, 8])
    torch.testing.assert_close(loaded(x, sigma, labels), model(x, sigma, labels))
    (tmp_path / "d" / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="train_discriminator"):
        NoisyTileDiscriminator.from_pretrained(tmp_path / "d")


def test_logit_gradient_is_the_gradient_of_the_logit():
    gradient = logit_gradient(PrefersBright(), torch.randn(2, 3, 28, 28), 0.5, torch.tensor([0, 1]))
    torch.testing.assert_close(gradient, torch.ones(2, 3, 28, 28))


def test_vp_noise_keeps_unit_variance_and_matches_the_scheduler():
    x0, noise = torch.zeros(1, 3, 28, 28), torch.randn(1, 3, 28, 28)
    alpha_bar = build_noise_scheduler().alphas_cumprod[500]
    sigma = ((1 - alpha_bar) / alpha_bar).sqrt().view(1)
    torch.testing.assert_close(vp_noise(x0, sigma, noise), (1 - alpha_bar).sqrt() * noise)


def test_discriminator_guidance_moves_samples_the_way_the_discriminator_prefers():
    plain = tiny_generator(PrefersBright(), weight=0.0)
    guided = tiny_generator(PrefersBright(), weight=0.5)
    a, b = plain.generate(0, 4, seed=3), guided.generate(0, 4, seed=3)
    assert b.astype(float).mean() > a.astype(float).mean() + 5
    np.testing.assert_array_equal(b, guided.generate(0, 4, seed=3))  # deterministic per seed


def test_a_discriminator_trained_on_named_classes_corrects_only_their_tiles(tmp_path):
    torch.manual_seed(2)
    background_only = NoisyTileDiscriminator(DiscriminatorConfig(channels=(8, 16, 16), embed_dim=16, classes=("background",)))
    plain, guided = tiny_generator(background_only, weight=0.0), tiny_generator(background_only, weight=5.0)
    np.testing.assert_array_equal(plain.generate(0, 3, seed=4), guided.generate(0, 3, seed=4))  # adipose: untouched
    assert np.abs(plain.generate(1, 3, seed=4).astype(int) - guided.generate(1, 3, seed=4)).max() > 0
    background_only.save_pretrained(tmp_path / "d")
    loaded = NoisyTileDiscriminator.from_pretrained(tmp_path / "d")
    assert loaded.config.classes == ("background",)
    assert corrected_tiles(loaded, torch.tensor([0, 1, 7, 1])).tolist() == [False, True, False, True]
    assert corrected_tiles(NoisyTileDiscriminator(TINY), torch.tensor([0, 1])).tolist() == [True, True]


def test_a_discriminator_config_naming_an_unknown_class_names_the_rebuild_command(tmp_path):
    NoisyTileDiscriminator(TINY).save_pretrained(tmp_path / "d")
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    (tmp_path / "d" / "config.json").write_text(json.dumps({**config, "classes": ["no-such-tissue"]}))
    with pytest.raises(ValueError, match="train_discriminator"):
        NoisyTileDiscriminator.from_pretrained(tmp_path / "d")


def test_a_profile_asking_for_discriminator_guidance_needs_a_discriminator():
    with pytest.raises(ValueError, match="no discriminator"):
        tiny_generator(None, weight=1.0)
    generator = tiny_generator(None)
    with pytest.raises(ValueError, match="train_discriminator"):
        generator.pipeline(torch.zeros(2, dtype=torch.long), 3, 1.0, torch.Generator().manual_seed(0), bf16=False,
                           discriminator_guidance=1.0)


@pytest.mark.parametrize("weight", [-0.5, 10.5, "1", True, float("nan")])
def test_bad_discriminator_weights_are_refused(weight):
    with pytest.raises(ValueError, match="discriminator_guidance"):
        SamplingDefaults(discriminator_guidance=weight)


def test_lora_backend_refuses_discriminator_guidance():
    settings = SamplingDefaults(discriminator_guidance=1.0)
    with pytest.raises(ValueError, match="pixel-diffusion backend only"):
        LoraGenerator(None, 28, SamplingProfiles(settings, settings))


def test_generator_folder_keeps_its_discriminator(tmp_path):
    torch.manual_seed(1)
    tiny_generator(NoisyTileDiscriminator(TINY), weight=1.0).save_pretrained(tmp_path / "gen")
    loaded = load_generator(tmp_path / "gen")
    assert isinstance(loaded.pipeline.discriminator, NoisyTileDiscriminator)
    assert loaded.profiles.bank.discriminator_guidance == 1.0
    assert loaded.generate(2, 2, seed=5, profile="bank").shape == (2, 28, 28, 3)


def write_fake_export(folder, fixture_dir) -> None:
    """A stand-in for export_synthetic's file: the fixture's train tiles with their colours inverted."""
    real = np.load(fixture_dir / "pathmnist.npz")
    folder.mkdir()
    np.savez(folder / "pathmnist.npz", train_images=255 - real["train_images"], train_labels=real["train_labels"])


def test_training_tells_real_from_generated_and_writes_a_loadable_folder(tmp_path, fixture_dir, one_torch_thread):
    torch.manual_seed(0)
    tiny_generator().save_pretrained(tmp_path / "gen")
    write_fake_export(tmp_path / "fake", fixture_dir)
    args = train_discriminator.parse_args([
        "--generator", str(tmp_path / "gen"), "--fake-data-dir", str(tmp_path / "fake"), "--data-dir", str(fixture_dir),
        "--per-class", "18", "--held-out-fraction", "0.2", "--steps", "60", "--batch-size", "32",
        "--channels", "8", "16", "16", "--lr", "3e-3"])
    summary = train_discriminator.main(args)
    # Inverted colours are obvious at low noise and invisible at sigma 5.
    assert summary["held_out"]["0.01"]["accuracy"] >= 0.9
    assert summary["tiles"]["real"] == {"train": 130, "held_out": 32}
    record = json.loads((tmp_path / "gen" / "discriminator" / "training.json").read_text())
    assert record["command"].split()[:3] == ["python", "-m", "training.train_discriminator"]
    assert record["generator"]["sha256"] and record["generated_tiles"]["sha256"]
    assert not any(name.startswith("discriminator/") for name in record["generator"]["sha256"])
    assert isinstance(load_generator(tmp_path / "gen").pipeline.discriminator, NoisyTileDiscriminator)


def test_training_on_named_classes_keeps_to_them_and_says_so(tmp_path, fixture_dir, one_torch_thread):
    tiny_generator().save_pretrained(tmp_path / "gen")
    write_fake_export(tmp_path / "fake", fixture_dir)
    argv = ["--generator", str(tmp_path / "gen"), "--fake-data-dir", str(tmp_path / "fake"), "--data-dir",
            str(fixture_dir), "--per-class", "18", "--held-out-fraction", "0.2", "--steps", "2", "--batch-size", "8",
            "--channels", "8", "16", "16", "--classes", "background"]
    summary = train_discriminator.main(train_discriminator.parse_args(argv))
    assert summary["classes"] == ["background"] and summary["tiles"]["real"] == {"train": 14, "held_out": 4}
    assert load_generator(tmp_path / "gen").pipeline.discriminator.config.classes == ("background",)
    with pytest.raises(SystemExit):
        train_discriminator.parse_args([*argv[:-1], "no-such-tissue"])


def test_training_on_a_class_the_generated_tiles_lack_stops_with_a_message(tmp_path, fixture_dir, one_torch_thread):
    tiny_generator().save_pretrained(tmp_path / "gen")
    real = np.load(fixture_dir / "pathmnist.npz")
    (tmp_path / "fake").mkdir()
    keep = real["train_labels"][:, 0] != 1
    np.savez(tmp_path / "fake" / "pathmnist.npz", train_images=real["train_images"][keep],
             train_labels=real["train_labels"][keep])
    argv = ["--generator", str(tmp_path / "gen"), "--fake-data-dir", str(tmp_path / "fake"), "--data-dir",
            str(fixture_dir), "--per-class", "18", "--steps", "2", "--classes", "background"]
    with pytest.raises(SystemExit, match="no tile of class Background"):
        train_discriminator.main(train_discriminator.parse_args(argv))


def test_tune_sampling_sweeps_discriminator_weights_only_where_there_is_a_discriminator(tmp_path, fixture_dir):
    args = tune_sampling.parse_args(["--steps", "2", "--guidance", "1", "--discriminator-guidance", "0", "1.5"])
    assert [s.discriminator_guidance for s in tune_sampling.distinct_settings(args)] == [0.0, 1.5]
    with pytest.raises(SystemExit):
        tune_sampling.parse_args(["--discriminator-guidance", "-1"])
    tiny_generator().save_pretrained(tmp_path / "gen")
    args = tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--discriminator-guidance", "1"])
    with pytest.raises(SystemExit, match="no discriminator"):
        tune_sampling.main(args)
