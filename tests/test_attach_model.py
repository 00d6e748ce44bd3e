import json

import numpy as np
import pytest
import torch

from pathgen.classifier import TissueClassifier
from pathgen.generation import GENERATOR_CONFIG_NAME, SamplingDefaults, SamplingProfiles, load_generator
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet
from training import attach_model, train_generator, tune_sampling

PROFILES = SamplingProfiles(live=SamplingDefaults(steps=3), bank=SamplingDefaults(steps=4, guidance=2.0))


def save_tiny_generator(folder, seed: int, channels: tuple[int, ...] = (16, 32)) -> None:
    torch.manual_seed(seed)
    unet = build_unet(UNetShape(block_out_channels=channels, norm_num_groups=8, attention_head_dim=8))
    PixelDiffusionGenerator(unet, dict(build_noise_scheduler().config), PROFILES, bf16=False).save_pretrained(folder)


def attach(generator, source, name: str = "unet-bank") -> None:
    attach_model.main(attach_model.parse_args(["--generator", str(generator), "--source", str(source), "--name", name]))


def test_bank_profile_samples_with_the_attached_network_and_live_keeps_its_own(tmp_path):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "big", seed=1, channels=(16, 32, 32))
    (tmp_path / "big" / "training.json").write_text(json.dumps({"steps": 2}))
    live_before = load_generator(tmp_path / "gen").generate(2, 2, seed=3, profile="live")
    attach(tmp_path / "gen", tmp_path / "big")
    generator, big = load_generator(tmp_path / "gen"), load_generator(tmp_path / "big")
    np.testing.assert_array_equal(generator.generate(2, 2, seed=3, profile="bank"), big.generate(2, 2, seed=3, profile="bank"))
    np.testing.assert_array_equal(generator.generate(2, 2, seed=3, profile="live"), live_before)
    assert generator.profiles.bank == SamplingDefaults(steps=4, guidance=2.0, model="unet-bank")
    assert json.loads((tmp_path / "gen" / "unet-bank" / "training.json").read_text()) == {"steps": 2}
    # Attaching under another name replaces the profile's network and leaves no stale copy behind.
    attach(tmp_path / "gen", tmp_path / "big", name="unet-bank-2")
    assert not (tmp_path / "gen" / "unet-bank").exists() and load_generator(tmp_path / "gen").profiles.bank.model == "unet-bank-2"
    # A fine-tune starting from this folder trains unet/ only, so its export samples every profile with that.
    inherited = train_generator.inherited_profiles(str(tmp_path / "gen"))
    assert inherited.bank == SamplingDefaults(steps=4, guidance=2.0) and inherited.live == PROFILES.live


def test_a_network_attached_for_one_class_samples_that_class_only(tmp_path):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "special", seed=1)
    before = load_generator(tmp_path / "gen")
    attach_model.main(attach_model.parse_args(["--generator", str(tmp_path / "gen"), "--source", str(tmp_path / "special"),
                                               "--name", "unet-background", "--class", "Background"]))
    generator, special = load_generator(tmp_path / "gen"), load_generator(tmp_path / "special")
    assert generator.profiles.bank.class_models == {"background": "unet-background"} and generator.profiles.bank.model == ""
    np.testing.assert_array_equal(generator.generate(1, 2, seed=3, profile="bank"), special.generate(1, 2, seed=3, profile="bank"))
    np.testing.assert_array_equal(generator.generate(2, 2, seed=3, profile="bank"), before.generate(2, 2, seed=3, profile="bank"))
    # Replacing the class's network removes the copy nothing samples with any more.
    attach_model.main(attach_model.parse_args(["--generator", str(tmp_path / "gen"), "--source", str(tmp_path / "special"),
                                               "--name", "unet-background-2", "--class", "background"]))
    assert not (tmp_path / "gen" / "unet-background").exists()
    inherited = train_generator.inherited_profiles(str(tmp_path / "gen"))
    assert inherited.bank.class_models == {}
    with pytest.raises(SystemExit):
        attach_model.main(attach_model.parse_args(["--generator", str(tmp_path / "gen"), "--source",
                                                   str(tmp_path / "special"), "--class", "no-such-tissue"]))


def attach_for_background(generator, source, name: str, *extra: str) -> None:
    attach_model.main(attach_model.parse_args(["--generator", str(generator), "--source", str(source), "--name", name,
                                               "--class", "background", *extra]))


def test_mix_adds_a_network_to_the_class_and_replacing_removes_every_network_it_drew_from(tmp_path):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "special", seed=1)
    attach_for_background(tmp_path / "gen", tmp_path / "special", "unet-a", "--mix")  # mixed with the main network
    assert load_generator(tmp_path / "gen").profiles.bank.class_models == {"background": ["unet", "unet-a"]}
    attach_for_background(tmp_path / "gen", tmp_path / "special", "unet-b")
    attach_for_background(tmp_path / "gen", tmp_path / "special", "unet-c", "--mix")
    generator = load_generator(tmp_path / "gen")
    assert generator.profiles.bank.class_models == {"background": ["unet-b", "unet-c"]}
    assert not (tmp_path / "gen" / "unet-a").exists()
    tiles = generator.generate(1, 4, seed=3, profile="bank")
    np.testing.assert_array_equal(load_generator(tmp_path / "gen").generate(1, 4, seed=3, profile="bank"), tiles)
    attach_for_background(tmp_path / "gen", tmp_path / "special", "unet-d")
    assert not (tmp_path / "gen" / "unet-b").exists() and not (tmp_path / "gen" / "unet-c").exists()
    with pytest.raises(SystemExit, match="--mix needs --class"):
        attach_model.main(attach_model.parse_args(["--generator", str(tmp_path / "gen"), "--source",
                                                   str(tmp_path / "special"), "--mix"]))
    for name in ("unet-e", "unet-f", "unet-g"):
        attach_for_background(tmp_path / "gen", tmp_path / "special", name, "--mix")
    with pytest.raises(SystemExit, match="class_models"):  # five networks for one class
        attach_for_background(tmp_path / "gen", tmp_path / "special", "unet-h", "--mix")
    assert not (tmp_path / "gen" / "unet-h").exists()


def test_tuning_a_profile_keeps_its_network(tmp_path, fixture_dir):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "big", seed=1)
    attach(tmp_path / "gen", tmp_path / "big")
    attach_for_background(tmp_path / "gen", tmp_path / "big", "unet-background", "--mix")
    TissueClassifier().eval().save_pretrained(tmp_path / "clf")
    tune_sampling.main(tune_sampling.parse_args([
        "--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"), "--profile", "bank",
        "--steps", "1", "--guidance", "1.5", "--per-class", "2", "--data-dir", str(fixture_dir), "--batch-size", "2",
        "--write-defaults"]))
    bank = load_generator(tmp_path / "gen").profiles.bank
    assert (bank.steps, bank.guidance, bank.model) == (1, 1.5, "unet-bank")
    assert bank.class_models == {"background": ["unet-bank", "unet-background"]}


@pytest.mark.parametrize("name,message", [("unet", "plain folder name"), ("../x", "plain folder name"),
                                          ("scheduler", "plain folder name")])
def test_bad_names_are_refused(tmp_path, name, message):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "big", seed=1)
    with pytest.raises(SystemExit, match=message):
        attach(tmp_path / "gen", tmp_path / "big", name=name)


def test_a_network_from_another_noise_schedule_or_no_network_is_refused(tmp_path):
    save_tiny_generator(tmp_path / "gen", seed=0)
    save_tiny_generator(tmp_path / "big", seed=1)
    scheduler_file = tmp_path / "big" / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(json.dumps(json.loads(scheduler_file.read_text()) | {"beta_schedule": "linear"}))
    with pytest.raises(SystemExit, match="another noise schedule"):
        attach(tmp_path / "gen", tmp_path / "big")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / GENERATOR_CONFIG_NAME).write_text((tmp_path / "gen" / GENERATOR_CONFIG_NAME).read_text())
    with pytest.raises(SystemExit, match="no unet/"):
        attach(tmp_path / "gen", tmp_path / "empty")
    with pytest.raises(SystemExit, match="same folder"):
        attach(tmp_path / "gen", tmp_path / "gen")
    assert load_generator(tmp_path / "gen").profiles.bank.model == ""
