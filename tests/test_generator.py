import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from pathgen.classifier import TissueClassifier
from pathgen.data import NUM_CLASSES
from pathgen.flat_fields import snap_to_colours
from pathgen.generation import (
    GENERATOR_CONFIG_NAME,
    MAX_IMAGES_PER_CALL,
    SamplingDefaults,
    SamplingProfiles,
    load_generator,
    network_of_each_tile,
    write_sampling_defaults,
)
from pathgen.generator import (
    PixelDiffusionGenerator,
    UNetShape,
    build_noise_scheduler,
    build_unet,
    edm_sigmas,
    karras_timesteps,
)
from pathgen.validation import pack_image_seed, regenerate
from tests.conftest import ASSETS
from training import evaluate_generator, train_generator

TINY = ["--channels", "16", "32", "--norm-groups", "8", "--batch-size", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def shipped() -> PixelDiffusionGenerator:
    return load_generator(ASSETS / "generator")


def test_tiny_training_runs_checkpoints_and_resumes(tmp_path, fixture_dir):
    out, runs = tmp_path / "generator", tmp_path / "runs"
    common = ["--data-dir", str(fixture_dir), "--output-dir", str(out), "--checkpoint-dir", str(runs),
              "--save-every", "2", "--warmup-steps", "1", *TINY]
    train_generator.main(train_generator.parse_args([*common, "--max-steps", "2"]))
    first = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert first["step"] == 2 and (runs / "samples_000002.png").is_file()
    train_generator.main(train_generator.parse_args([*common, "--max-steps", "4"]))
    second = torch.load(runs / "checkpoint.pt", weights_only=False)
    assert second["step"] == 4
    changed = [not torch.equal(first["model"][k], second["model"][k]) for k in first["model"]]
    assert any(changed), "resumed training did not update the weights"
    assert json.loads((out / "training.json").read_text())["steps"] == 4

    generator = load_generator(out)
    ema = {k: v.float() for k, v in generator.pipeline.unet.state_dict().items()}
    np.testing.assert_allclose(ema["conv_in.weight"], second["emas"][0]["conv_in.weight"].float(), atol=1e-3)
    images = generator.generate(3, 2, seed=1, steps=2)
    assert images.shape == (2, 28, 28, 3) and images.dtype == np.uint8


def test_fine_tuning_starts_from_the_saved_weights_and_keeps_their_architecture(tmp_path, fixture_dir):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    common = ["--data-dir", str(fixture_dir), "--save-every", "1", "--warmup-steps", "1", "--max-steps", "1", *TINY]
    train_generator.main(train_generator.parse_args(
        [*common, "--output-dir", str(base), "--checkpoint-dir", str(tmp_path / "runs-base")]))
    # The --channels passed here differ from the base's and must be ignored in favour of the saved config.
    train_generator.main(train_generator.parse_args(
        [*common, "--output-dir", str(tuned), "--checkpoint-dir", str(tmp_path / "runs-tuned"),
         "--init-from", str(base), "--channels", "8", "16", "32"]))
    base_unet, tuned_unet = load_generator(base).pipeline.unet, load_generator(tuned).pipeline.unet
    assert tuned_unet.config.block_out_channels == base_unet.config.block_out_channels
    tuned_weights = dict(tuned_unet.named_parameters())
    # One small step away from the base, not a fresh random initialisation.
    for name, weight in base_unet.named_parameters():
        assert torch.allclose(weight, tuned_weights[name], atol=0.05), name
    record = json.loads((tuned / "training.json").read_text())
    assert record["args"]["init_from"] == str(base)
    # The record names the architecture that trained, not the ignored --channels.
    assert record["args"]["channels"] == [16, 32] and record["args"]["norm_groups"] == 8
    assert "--channels 16 32 " in record["segments"][0]["command"]
    parent = record["initialised_from"]  # the base's own history travels with the fine-tuned weights
    assert parent["path"] == str(base) and parent["training"] == json.loads((base / "training.json").read_text())
    assert parent["sha256"]["unet/diffusion_pytorch_model.safetensors"]


def test_fine_tuning_from_a_folder_without_weights_says_what_to_pass(tmp_path, fixture_dir):
    args = train_generator.parse_args(["--data-dir", str(fixture_dir), "--init-from", str(tmp_path), *TINY,
                                       "--checkpoint-dir", str(tmp_path / "runs")])
    with pytest.raises(FileNotFoundError, match="no unet/ folder"):
        train_generator.main(args)


def test_cosine_schedule_warms_up_then_anneals_to_zero():
    args = train_generator.parse_args(["--max-steps", "100", "--warmup-steps", "10"])
    factors = [train_generator.learning_rate_factor(step, args) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[55] == pytest.approx(0.5) and factors[100] == pytest.approx(0.0)
    constant = train_generator.parse_args(["--max-steps", "100", "--warmup-steps", "10", "--lr-schedule", "constant"])
    assert train_generator.learning_rate_factor(90, constant) == 1.0


def test_shipped_model_is_deterministic_per_seed(shipped):
    a = shipped.generate(0, 4, seed=123, steps=4)
    b = shipped.generate(0, 4, seed=123, steps=4)
    c = shipped.generate(0, 4, seed=124, steps=4)
    assert a.shape == (4, 28, 28, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255 and a.std() > 5


def tiny_generator(bank: SamplingDefaults | None = None, **live) -> PixelDiffusionGenerator:
    torch.manual_seed(0)
    unet = build_unet(UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8))
    profiles = SamplingProfiles(live=SamplingDefaults(**live), bank=bank or SamplingDefaults(**live))
    return PixelDiffusionGenerator(unet, dict(build_noise_scheduler().config), profiles, bf16=False)


def unet_batch_sizes(generator: PixelDiffusionGenerator, **generate_kwargs) -> list[int]:
    sizes = []
    hook = generator.pipeline.unet.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    try:
        generator.generate(0, 3, seed=7, **generate_kwargs)
    finally:
        hook.remove()
    return sizes


def test_guidance_interval_guides_only_the_steps_inside_it():
    # Trailing spacing at 4 steps visits t = 999, 749, 499, 249, i.e. levels 0.999, 0.749, 0.499, 0.249.
    everywhere, middle = tiny_generator(), tiny_generator(guidance_interval=(0.3, 0.8))
    assert unet_batch_sizes(everywhere, steps=4, guidance=3.0) == [6, 6, 6, 6]
    assert unet_batch_sizes(middle, steps=4, guidance=3.0) == [3, 6, 6, 3]
    assert unet_batch_sizes(middle, steps=4, guidance=1.0) == [3, 3, 3, 3]  # guidance 1 is conditional only
    never = tiny_generator(guidance_interval=(0.0, 0.1))
    np.testing.assert_array_equal(never.generate(2, 3, seed=5, steps=4, guidance=3.0),
                                  everywhere.generate(2, 3, seed=5, steps=4, guidance=1.0))
    assert not np.array_equal(middle.generate(2, 3, seed=5, steps=4, guidance=3.0),
                              everywhere.generate(2, 3, seed=5, steps=4, guidance=3.0))


@pytest.mark.parametrize("interval", [(0.5, 0.2), (-0.1, 1.0), (0.0, 1.5)])
def test_bad_guidance_interval_is_rejected(interval):
    with pytest.raises(ValueError, match="guidance_interval"):
        SamplingDefaults(guidance_interval=interval)


def test_sde_solver_is_reproducible_per_seed_and_differs_from_the_ode_solver():
    ode, sde = tiny_generator(), tiny_generator(solver="sde-dpmsolver++")
    first = sde.generate(3, 4, seed=11, steps=4, guidance=2.0)
    np.testing.assert_array_equal(first, sde.generate(3, 4, seed=11, steps=4, guidance=2.0))
    assert not np.array_equal(first, sde.generate(3, 4, seed=12, steps=4, guidance=2.0))
    # Same starting noise; only the SDE's fresh noise at each step can make these differ.
    assert not np.array_equal(first, ode.generate(3, 4, seed=11, steps=4, guidance=2.0))
    assert first.shape == (4, 28, 28, 3) and first.dtype == np.uint8


def test_unknown_solver_is_rejected():
    with pytest.raises(ValueError, match="solver must be one of dpmsolver\\+\\+, sde-dpmsolver\\+\\+"):
        SamplingDefaults(solver="euler")


def test_guidance_interval_round_trips_through_save_pretrained(tmp_path):
    tiny_generator(steps=6, guidance=2.5, guidance_interval=(0.1, 0.9), solver="sde-dpmsolver++").save_pretrained(
        tmp_path / "gen")
    assert load_generator(tmp_path / "gen").defaults == SamplingDefaults(6, 2.5, (0.1, 0.9), "sde-dpmsolver++")


def test_an_export_records_nowhere_it_was_loaded_from_and_keeps_its_weights(tmp_path):
    # diffusers writes the load path into a re-saved config.json; an export made from another folder or machine
    # must be the same file, so that its hash in bank and report provenance does not depend on where it was made.
    tiny_generator(steps=3, guidance=2.0).save_pretrained(tmp_path / "first")
    loaded = PixelDiffusionGenerator.from_pretrained(tmp_path / "first")
    assert str(loaded.pipeline.unet.config["_name_or_path"]) == str(tmp_path / "first" / "unet")
    loaded.save_pretrained(tmp_path / "second")
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        first, second = (tmp_path / folder / "unet" / name for folder in ("first", "second"))
        assert first.read_bytes() == second.read_bytes(), name
    assert "_name_or_path" not in json.loads((tmp_path / "second" / "unet" / "config.json").read_text())


def test_shipped_samples_are_recognised_by_shipped_classifier(shipped):
    # Measured at the live profile on 438-500 unfiltered images per class (generator.json at commit c7aa764): recall 0.85 (stroma) to
    # 1.0, macro 0.96. With 32 per class the floors leave room for sampling noise (a class at 0.80 falls below
    # 16 of 32 with probability < 0.01%) yet stay far above chance (0.11), and a generator that drew the wrong
    # tissue for any class, or lost most of its quality, would fail.
    classifier = TissueClassifier.from_pretrained(ASSETS / "classifier")
    agreements = []
    for class_index in range(9):
        images = shipped.generate(class_index, 32, seed=class_index)
        agreements.append((classifier.predict_proba(images).argmax(1) == class_index).mean())
        assert agreements[-1] >= 16 / 32, f"class {class_index}: only {agreements[-1]:.0%} recognised"
    assert np.mean(agreements) >= 0.85, f"mean agreement {np.mean(agreements):.0%}"


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_index=9, n=1), "Unknown tissue class"),
    (dict(class_index="tumor", n=1), "Unknown tissue class"),
    (dict(class_index=0, n=0), "n must be"),
    (dict(class_index=0, n=MAX_IMAGES_PER_CALL + 1), "n must be"),
    (dict(class_index=0, n=1, steps=0), "steps must be"),
    (dict(class_index=0, n=1, steps=2.5), "steps must be"),
    (dict(class_index=0, n=1, seed=-1), "seed must be"),
    (dict(class_index=0, n=1, guidance=-1.0), "guidance must be"),
    (dict(class_index=0, n=1, guidance=float("nan")), "guidance must be"),
])
def test_bad_arguments_are_rejected(shipped, kwargs, match):
    class_index, n = kwargs.pop("class_index"), kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        shipped.generate(class_index, n, **kwargs)


def test_missing_and_corrupt_generator_folders(tmp_path, shipped):
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="generator_config.json"):
        load_generator(tmp_path)
    shipped.save_pretrained(tmp_path / "copy")
    (tmp_path / "copy" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_generator(tmp_path / "copy")
    (tmp_path / "copy" / "generator_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_generator(tmp_path / "copy")


def test_shipped_weights_are_small():
    total = sum(f.stat().st_size for f in (ASSETS / "generator").rglob("*") if f.is_file())
    assert total <= 25e6


def test_write_sampling_defaults_replaces_only_the_defaults_and_checks_them(tmp_path):
    tiny_generator().save_pretrained(tmp_path)
    write_sampling_defaults(tmp_path, SamplingDefaults(steps=7, guidance=2.5, guidance_interval=(0.1, 1.0)))
    config = json.loads((tmp_path / GENERATOR_CONFIG_NAME).read_text())
    untouched = {"steps": 12, "guidance": 3.0, "guidance_interval": [0.0, 1.0], "solver": "dpmsolver++",
                 "noise_spacing": "trailing"}
    assert config == {"backend": "pixel-diffusion", "sampling_profiles": {
        "live": {**untouched, "steps": 7, "guidance": 2.5, "guidance_interval": [0.1, 1.0]}, "bank": untouched}}
    assert load_generator(tmp_path).defaults.guidance_interval == (0.1, 1.0)
    assert load_generator(tmp_path).profiles.bank == SamplingDefaults()
    reversed_interval = SamplingDefaults()
    reversed_interval.guidance_interval = (0.8, 0.2)  # dataclass fields can be changed after the check
    with pytest.raises(ValueError, match="guidance_interval"):
        write_sampling_defaults(tmp_path, reversed_interval)
    for unknown in (SamplingDefaults(model="unet-bank"), SamplingDefaults(class_models={"background": ["unet", "unet-x"]})):
        with pytest.raises(ValueError, match="lacks"):
            write_sampling_defaults(tmp_path, unknown, profile="bank")
    assert json.loads((tmp_path / GENERATOR_CONFIG_NAME).read_text()) == config


def test_each_profile_is_deterministic_per_seed_and_the_profiles_differ():
    generator = tiny_generator(bank=SamplingDefaults(steps=6, guidance=2.0, solver="sde-dpmsolver++",
                                                     noise_spacing="karras"), steps=3)
    for profile in ("live", "bank"):
        first = generator.generate(4, 3, seed=21, profile=profile)
        np.testing.assert_array_equal(first, generator.generate(4, 3, seed=21, profile=profile))
        assert not np.array_equal(first, generator.generate(4, 3, seed=22, profile=profile))
    assert not np.array_equal(generator.generate(4, 3, seed=21, profile="live"),
                              generator.generate(4, 3, seed=21, profile="bank"))
    with pytest.raises(ValueError, match="profile must be one of live, bank"):
        generator.generate(4, 3, seed=21, profile="<b>best</b>")


def test_karras_spacing_ends_with_smaller_steps_than_trailing():
    pipeline = tiny_generator().pipeline
    trailing, karras = pipeline.make_scheduler(), pipeline.make_scheduler()
    pipeline.set_timesteps(trailing, 12, "trailing")
    pipeline.set_timesteps(karras, 12, "karras")
    assert len(karras.timesteps) == 12 and int(karras.timesteps[0]) == 999
    # The last model call before the clean image: Karras spacing puts it much closer to the data.
    assert int(karras.timesteps[-1]) < int(trailing.timesteps[-1]) / 2
    for steps in (1, 2, 6, 50, 200):
        timesteps = karras_timesteps(pipeline.scheduler_config, steps)
        assert len(timesteps) == steps and timesteps[0] == 999
        assert all(a > b >= 0 for a, b in zip(timesteps, timesteps[1:], strict=False))


def test_edm_sigmas_match_the_discriminators_noising():
    # pathgen.discriminator noises a tile as alpha (x0 + sigma eps) with alpha = 1 / sqrt(1 + sigma^2); the
    # sampler's sigma at timestep t must describe the same tile as the schedule's alpha_bar_t.
    alphas_cumprod = build_noise_scheduler().alphas_cumprod.double()
    sigmas = edm_sigmas(alphas_cumprod)
    assert torch.allclose(1 / (1 + sigmas**2), alphas_cumprod, rtol=1e-9)
    assert bool((sigmas[1:] > sigmas[:-1]).all())
    assert edm_sigmas(alphas_cumprod.float()).dtype == torch.float32


@pytest.mark.parametrize("profiles,match", [
    ({"live": {"steps": 0}}, "steps must be"),
    ({"live": {"guidance": "3"}}, "guidance must be"),
    ({"bank": {"noise_spacing": "cosine"}}, "noise_spacing must be"),
    ({"live": {}, "bank": {}, "fast": {}}, "unknown sampling profiles"),
    ({"bank": {"model": "../unet"}}, "model must be"),
    ({"bank": {"model": 3}}, "model must be"),
])
def test_config_writer_and_reader_refuse_bad_values(tmp_path, profiles, match):
    with pytest.raises(ValueError, match=match):
        SamplingProfiles.from_config({"sampling_profiles": {"live": {}, "bank": {}, **profiles}})
    tiny_generator().save_pretrained(tmp_path)
    config_file = tmp_path / GENERATOR_CONFIG_NAME
    config_file.write_text(json.dumps({"backend": "pixel-diffusion",
                                       "sampling_profiles": {"live": {}, "bank": {}, **profiles}}))
    with pytest.raises(ValueError, match="corrupt"):
        load_generator(tmp_path)


def test_a_single_sampling_defaults_entry_serves_both_profiles(tmp_path):
    tiny_generator().save_pretrained(tmp_path)
    (tmp_path / GENERATOR_CONFIG_NAME).write_text(json.dumps(
        {"backend": "pixel-diffusion", "sampling_defaults": {"steps": 5, "guidance": 2.0}}))
    profiles = load_generator(tmp_path).profiles
    assert profiles.live == profiles.bank == SamplingDefaults(steps=5, guidance=2.0)


def test_edm_recipe_runs_in_segments_with_several_ema_snapshots(tmp_path, fixture_dir):
    out, runs = tmp_path / "export", tmp_path / "runs"
    common = ["--data-dir", str(fixture_dir), "--output-dir", str(out), "--checkpoint-dir", str(runs),
              "--save-every", "100", "--warmup-steps", "1", "--max-steps", "3", "--noise-sampling", "lognormal",
              "--loss-weighting", "edm", "--ema-decays", "0.1", "0.99", *TINY]
    # A zero-minute segment stops after its first step, with a checkpoint, as a segment that ran out of time does.
    train_generator.main(train_generator.parse_args([*common, "--segment-minutes", "0"]))
    assert torch.load(runs / "checkpoint.pt", weights_only=False)["step"] == 1
    train_generator.main(train_generator.parse_args(common))
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 3 and record["images_seen"] == 3 * 8
    assert [(s["step_start"], s["step_end"]) for s in record["segments"]] == [(0, 1), (1, 3)]
    assert "--segment-minutes 0" in record["segments"][0]["command"]
    assert "--segment-minutes" not in record["segments"][1]["command"]
    # Early on the EMA warm-up caps every decay near 0.2, so only a decay below that averages differently.
    snapshots = [load_generator(runs / f"ema-{decay}").pipeline.unet for decay in ("0.1", "0.99")]
    assert not torch.equal(snapshots[0].conv_in.weight, snapshots[1].conv_in.weight)
    logged = [json.loads(line) for line in (runs / "log.jsonl").read_text().splitlines()]
    assert set(logged[-1]["held_out_x0_mse"]) == {"0.1", "0.99"}
    assert all(0 < value < 10 for value in logged[-1]["held_out_x0_mse"].values())
    for decay in ("0.1", "0.99"):
        per_level = logged[-1]["held_out_x0_mse_per_level"][decay]
        assert np.mean(list(per_level.values())) == pytest.approx(logged[-1]["held_out_x0_mse"][decay])
        assert 0 < logged[-1]["held_out_x0_mse_geometric"][decay] < logged[-1]["held_out_x0_mse"][decay]
    with pytest.raises(ValueError, match="EMA snapshots"):
        train_generator.main(train_generator.parse_args([*common, "--max-steps", "4", "--ema-decays", "0.1"]))


def test_held_out_of_reports_a_saved_generator_and_trains_nothing(tmp_path, fixture_dir, capsys):
    tiny_generator().save_pretrained(tmp_path / "gen")
    train_generator.main(train_generator.parse_args(
        ["--data-dir", str(fixture_dir), "--held-out-of", str(tmp_path / "gen"), "--checkpoint-dir", str(tmp_path / "runs")]))
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(report["held_out_x0_mse"]["per_level"]) == {str(s) for s in train_generator.HELD_OUT_LEVELS}
    assert report["held_out_x0_mse"]["mean"] > 0 and not (tmp_path / "runs").exists()
    levels = np.array(list(report["held_out_x0_mse"]["per_level"].values()))
    # The geometric mean is below the arithmetic one unless every level's error is the same.
    assert report["held_out_x0_mse"]["geometric_mean"] == pytest.approx(float(np.exp(np.log(levels).mean())))
    assert levels.min() < report["held_out_x0_mse"]["geometric_mean"] < levels.mean()


def test_ema_decays_differ_from_the_first_step_of_a_fine_tune():
    update_ema = train_generator.update_ema
    model, ema_short, ema_long = (torch.nn.Linear(1, 1, bias=False) for _ in range(3))
    for m, value in ((model, 1.0), (ema_short, 0.0), (ema_long, 0.0)):
        torch.nn.init.constant_(m.weight, value)
    update_ema(ema_short, model, step=10, decay=0.9)
    update_ema(ema_long, model, step=10, decay=0.99)
    assert ema_short.weight.item() == ema_long.weight.item()  # the warm-up average hides the decay early on
    for ema, decay in ((ema_short, 0.9), (ema_long, 0.99)):
        torch.nn.init.constant_(ema.weight, 0.0)
        update_ema(ema, model, step=100, decay=decay, warmup=False)
    assert ema_short.weight.item() == pytest.approx(0.1) and ema_long.weight.item() == pytest.approx(0.01)


def test_class_guidance_samples_named_classes_at_their_own_scale_and_round_trips(tmp_path):
    generator = tiny_generator(steps=3, guidance=2.5, class_guidance={"mucus": 1.0, 7: 4.0})
    live = generator.profiles.live
    assert live.class_guidance == {"mucus": 1.0, "stroma": 4.0}  # keys, in class order
    assert [live.guidance_for(c) for c in (0, 4, 7)] == [2.5, 1.0, 4.0]
    assert live.describe_guidance() == "2.5 (mucus 1, stroma 4)"
    np.testing.assert_array_equal(generator.generate("mucus", 3, seed=5), generator.generate(4, 3, seed=5, guidance=1.0))
    assert not np.array_equal(generator.generate(4, 3, seed=5), generator.generate(4, 3, seed=5, guidance=2.5))
    np.testing.assert_array_equal(generator.generate(0, 3, seed=5), generator.generate(0, 3, seed=5, guidance=2.5))
    generator.save_pretrained(tmp_path)
    assert json.loads((tmp_path / GENERATOR_CONFIG_NAME).read_text())["sampling_profiles"]["live"]["class_guidance"] == {
        "mucus": 1.0, "stroma": 4.0}
    assert load_generator(tmp_path).profiles.live == live
    # Profiles without per-class scales store none, so their configs and hashes stay as they were.
    assert "class_guidance" not in SamplingDefaults().to_dict()


@pytest.mark.parametrize(("class_guidance", "message"), [
    ({"mucosa": 1.0}, "Unknown tissue class"), ({"mucus": -1.0}, "class_guidance\\['mucus'\\]"),
    ({"mucus": "1.0"}, "class_guidance\\['mucus'\\]"), ({"mucus": float("nan")}, "class_guidance"),
    ([1.0] * 9, "class_guidance must map"), ({"x" * 10_000: 1.0}, "Unknown tissue class")])
def test_bad_class_guidance_is_refused_with_a_clear_message(class_guidance, message):
    with pytest.raises(ValueError, match=message) as refused:
        SamplingDefaults(class_guidance=class_guidance)
    assert len(str(refused.value)) < 300


def tiny_unet(seed: int):
    torch.manual_seed(seed)
    return build_unet(UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8))


def round_trip_extra_network(tmp_path, own, same, class_index, folder, build_without) -> dict:
    """Saves `own` (with an extra network in `folder`) and `same`, both in fp16; checks that loaded they sample
    `class_index` at `bank` alike; then that without `folder` the loader, and `build_without` (a constructor given no
    network for it), refuse. Returns the sampling profiles `own` saved."""
    own.save_pretrained(tmp_path / "own")
    same.save_pretrained(tmp_path / "other")
    saved = json.loads((tmp_path / "own" / GENERATOR_CONFIG_NAME).read_text())["sampling_profiles"]
    np.testing.assert_array_equal(load_generator(tmp_path / "own").generate(class_index, 2, seed=5, profile="bank"),
                                  load_generator(tmp_path / "other").generate(class_index, 2, seed=5, profile="bank"))
    shutil.rmtree(tmp_path / "own" / folder)
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        load_generator(tmp_path / "own")
    with pytest.raises(ValueError, match="lacks"):
        build_without()
    return saved


def test_a_profile_samples_with_its_own_network_and_keeps_it_through_save_and_load(tmp_path):
    config, live, bank = dict(build_noise_scheduler().config), SamplingDefaults(steps=3), SamplingDefaults(steps=4)
    main, other = tiny_unet(0), tiny_unet(1)
    own = PixelDiffusionGenerator(main, config, SamplingProfiles(live, replace(bank, model="unet-bank")), bf16=False,
                                  profile_unets={"unet-bank": other})
    only_main = PixelDiffusionGenerator(main, config, SamplingProfiles(live, bank), bf16=False)
    only_other = PixelDiffusionGenerator(other, config, SamplingProfiles(live, bank), bf16=False)
    for profile, same in (("bank", only_other), ("live", only_main)):
        np.testing.assert_array_equal(own.generate(3, 2, seed=5, profile=profile), same.generate(3, 2, seed=5, profile=profile))
    assert not np.array_equal(only_main.generate(3, 2, seed=5, profile="bank"), only_other.generate(3, 2, seed=5, profile="bank"))
    examples = np.full((2, 28, 28, 3), 200, dtype=np.uint8)
    np.testing.assert_array_equal(own.generate_guided(examples, 3, 2, strength=0.5, seed=5, profile="bank"),
                                  only_other.generate_guided(examples, 3, 2, strength=0.5, seed=5, profile="bank"))
    assert own.unet_for("bank") is other and own.unet_for("live") is main

    saved = round_trip_extra_network(tmp_path, own, only_other, 3, "unet-bank", lambda: PixelDiffusionGenerator(
        main, config, SamplingProfiles(live, replace(bank, model="unet-bank"))))
    assert saved["bank"]["model"] == "unet-bank" and "model" not in saved["live"]


def test_a_class_samples_with_its_own_network_and_the_other_classes_do_not(tmp_path):
    config, live = dict(build_noise_scheduler().config), SamplingDefaults(steps=3)
    bank = SamplingDefaults(steps=4, class_models={"background": "unet-background"})
    main, other = tiny_unet(0), tiny_unet(1)
    own = PixelDiffusionGenerator(main, config, SamplingProfiles(live, bank), bf16=False,
                                  profile_unets={"unet-background": other})
    only_main = PixelDiffusionGenerator(main, config, SamplingProfiles(live, replace(bank, class_models={})), bf16=False)
    only_other = PixelDiffusionGenerator(other, config, SamplingProfiles(live, replace(bank, class_models={})), bf16=False)
    for class_index, profile, same in ((1, "bank", only_other), (3, "bank", only_main), (1, "live", only_main)):
        np.testing.assert_array_equal(own.generate(class_index, 2, seed=5, profile=profile),
                                      same.generate(class_index, 2, seed=5, profile=profile))
    saved = round_trip_extra_network(tmp_path, own, only_other, 1, "unet-background",
                                     lambda: PixelDiffusionGenerator(main, config, SamplingProfiles(live, bank)))
    assert saved["bank"]["class_models"] == {"background": "unet-background"} and "class_models" not in saved["live"]
    described = evaluate_generator.class_architectures(own, "bank")
    assert list(described) == ["background"] and described["background"]["folder"] == "unet-background"
    assert list(described["background"]["block_out_channels"]) == list(other.config.block_out_channels)
    assert evaluate_generator.class_architectures(own, "live") == {}


def constant_unet(seed: int, predicted_noise: float):
    """A tiny UNet that predicts the same noise everywhere: strongly negative noise draws white tiles, positive
    black ones, whatever the sampler's noise, so a tile shows which network drew it."""
    unet = tiny_unet(seed)
    with torch.no_grad():
        unet.conv_out.weight.zero_()
        unet.conv_out.bias.fill_(predicted_noise)
    return unet


def test_a_class_drawn_from_two_networks_gets_equal_shares_placed_by_the_seed_and_regenerates(tmp_path):
    config, live = dict(build_noise_scheduler().config), SamplingDefaults(steps=3)
    bank = SamplingDefaults(steps=4, class_models={"background": ["unet-white", "unet-black"]})
    mixed = PixelDiffusionGenerator(tiny_unet(0), config, SamplingProfiles(live, bank), bf16=False, batch_size=4,
                                    profile_unets={"unet-white": constant_unet(1, -3.0), "unet-black": constant_unet(2, 3.0)})
    tiles = mixed.generate(1, 9, seed=5, profile="bank")
    white = tiles.reshape(9, -1).mean(axis=1) > 127
    expected = np.array(network_of_each_tile(["unet-white", "unet-black"], 5, 9)) == "unet-white"
    np.testing.assert_array_equal(white, expected)
    assert white.sum() in (4, 5) and 0 < white[:4].sum() < 4  # batches of 4 mix the networks too
    np.testing.assert_array_equal(mixed.generate(1, 9, seed=5, profile="bank"), tiles)
    assert not np.array_equal(network_of_each_tile(["a", "b"], 6, 9), network_of_each_tile(["a", "b"], 5, 9))
    for position in (0, 8):
        np.testing.assert_array_equal(regenerate(mixed, 1, pack_image_seed(5, 9, position), profile="bank"), tiles[position])
    examples = np.full((2, 28, 28, 3), 120, dtype=np.uint8)
    guided = mixed.generate_guided(examples, 1, 9, strength=0.9, seed=5, profile="bank")
    np.testing.assert_array_equal(guided.reshape(9, -1).mean(axis=1) > 127, expected)
    # Other classes and the live profile sample with the main network as before.
    plain = PixelDiffusionGenerator(tiny_unet(0), config, SamplingProfiles(live, replace(bank, class_models={})),
                                    bf16=False, batch_size=4)
    np.testing.assert_array_equal(mixed.generate(3, 9, seed=5, profile="bank"), plain.generate(3, 9, seed=5, profile="bank"))
    np.testing.assert_array_equal(mixed.generate(1, 9, seed=5, profile="live"), plain.generate(1, 9, seed=5, profile="live"))
    described = evaluate_generator.class_architectures(mixed, "bank")["background"]
    assert [network["folder"] for network in described] == ["unet-white", "unet-black"]
    mixed.save_pretrained(tmp_path / "g")
    assert load_generator(tmp_path / "g").profiles.bank.class_models == {"background": ["unet-white", "unet-black"]}
    shutil.rmtree(tmp_path / "g" / "unet-black")
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        load_generator(tmp_path / "g")
    with pytest.raises(ValueError, match="lacks"):
        PixelDiffusionGenerator(tiny_unet(0), config, SamplingProfiles(live, bank), profile_unets={"unet-white": tiny_unet(1)})


@pytest.mark.parametrize("networks,n", [(["a", "b"], 1), (["a", "b"], 64), (["a", "b", "c"], 10), (["a"], 5)])
def test_each_network_of_a_mixture_draws_an_equal_share_to_one_tile(networks, n):
    counts = [network_of_each_tile(networks, 11, n).count(name) for name in networks]
    assert sum(counts) == n and max(counts) - min(counts) <= 1


def test_a_class_with_flat_fields_is_snapped_to_its_colours_and_the_other_classes_are_not(tmp_path):
    config, live = dict(build_noise_scheduler().config), SamplingDefaults(steps=3)
    plain = PixelDiffusionGenerator(tiny_unet(0), config, SamplingProfiles(live, SamplingDefaults(steps=3)), bf16=False)
    drawn = plain.generate(1, 3, seed=5, profile="bank")
    colours = drawn[0, 0, :16]  # colours the tiles surely come near
    flat = {"background": {"colours": colours.tolist(), "tolerance": 16}}
    snapped = PixelDiffusionGenerator(tiny_unet(0), config, SamplingProfiles(live, SamplingDefaults(steps=3, flat_fields=flat)),
                                      bf16=False)
    expected = snap_to_colours(drawn, colours, 16)
    assert not np.array_equal(expected, drawn)
    np.testing.assert_array_equal(snapped.generate(1, 3, seed=5, profile="bank"), expected)
    np.testing.assert_array_equal(snapped.generate(0, 3, seed=5, profile="bank"), plain.generate(0, 3, seed=5, profile="bank"))
    np.testing.assert_array_equal(snapped.generate(1, 3, seed=5, profile="live"), plain.generate(1, 3, seed=5, profile="live"))
    examples = np.full((2, 28, 28, 3), 200, dtype=np.uint8)
    guided = snapped.generate_guided(examples, 1, 2, strength=0.5, seed=5, profile="bank")
    np.testing.assert_array_equal(guided, snap_to_colours(plain.generate_guided(examples, 1, 2, strength=0.5, seed=5,
                                                                                profile="bank"),
                                                          colours, 16))
    snapped.save_pretrained(tmp_path / "g")
    saved = json.loads((tmp_path / "g" / GENERATOR_CONFIG_NAME).read_text())["sampling_profiles"]
    assert saved["bank"]["flat_fields"] == flat and "flat_fields" not in saved["live"]
    assert load_generator(tmp_path / "g").profiles.bank.flat_field_for(1) == flat["background"]


@pytest.mark.parametrize("flat_fields", [{"no-such-tissue": {"colours": [[1, 2, 3]], "tolerance": 1}},
                                         {"background": {"colours": [[1, 2, 300]], "tolerance": 1}},
                                         {"background": {"colours": [[1, 2, 3]], "tolerance": 99}},
                                         {"background": [[1, 2, 3]]}, ["background"]])
def test_bad_flat_fields_are_refused(flat_fields, tmp_path):
    with pytest.raises(ValueError, match="flat_fields|no-such-tissue"):
        SamplingDefaults(flat_fields=flat_fields)


@pytest.mark.parametrize("class_models", [{"no-such-tissue": "unet-x"}, {"background": "../unet"},
                                          {"background": 3}, ["background"], {"background": "x" * 100},
                                          {"background": []}, {"background": ["unet-a"]},
                                          {"background": ["unet-a", "unet-a"]}, {"background": ["unet-a", "../b"]},
                                          {"background": [f"unet-{i}" for i in range(5)]}, {"background": ["a", 3]}])
def test_bad_class_models_are_refused(class_models):
    with pytest.raises(ValueError, match="class|no-such-tissue|Unknown"):
        SamplingDefaults(class_models=class_models)


def test_class_weights_draw_the_named_class_that_much_more_often():
    labels = torch.arange(NUM_CLASSES).repeat_interleave(100)
    weights = train_generator.draw_weights(labels, train_generator.parse_class_weights(["background=5"]))
    drawn = labels[torch.multinomial(weights, 13_000, replacement=True, generator=torch.Generator().manual_seed(0))]
    share = (drawn == 1).float().mean().item()
    assert abs(share - 5 / 13) < 0.02  # background: 5 of the 13 equal-sized shares
    assert train_generator.draw_weights(labels, {}) is None


def test_exact_colour_weights_single_out_the_named_class_flat_tiles_only():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, size=(30, 28, 28, 3), dtype=np.uint8)
    glass = np.array([237, 221, 236], dtype=np.uint8)
    tiles[[0, 1, 2]] = glass  # flat background glass
    tiles[3, :20] = glass + 1  # background, 20 of 28 rows within 1 grey level of it
    tiles[4, :10] = glass  # background, too little of it
    tiles[20] = glass  # a flat tile of another class
    labels = torch.tensor([1] * 10 + [0] * 20)
    images = torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous()
    factors = train_generator.exact_colour_factors(images, labels, {1: 3.0})
    assert factors.tolist() == [3.0] * 4 + [1.0] * 26
    assert train_generator.exact_colour_factors(images, labels, {}) is None
    weights = train_generator.draw_weights(labels, {1: 2.0}, factors)
    assert weights.tolist() == [6.0] * 4 + [2.0] * 6 + [1.0] * 20


def test_class_weighted_training_runs_and_records_its_weights(tmp_path, fixture_dir):
    out = tmp_path / "generator"
    train_generator.main(train_generator.parse_args(
        ["--data-dir", str(fixture_dir), "--output-dir", str(out), "--checkpoint-dir", str(tmp_path / "runs"),
         "--max-steps", "1", "--warmup-steps", "1", "--class-weights", "background=3", "mucus=0.5",
         "--exact-colour-weights", "background=2", *TINY]))
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 1 and record["args"]["class_weights"] == ["background=3", "mucus=0.5"]
    assert record["args"]["exact_colour_weights"] == ["background=2"]
    assert "--class-weights background=3 mucus=0.5 --exact-colour-weights background=2" in record["segments"][0]["command"]


@pytest.mark.parametrize("flag", ["--class-weights", "--exact-colour-weights"])
@pytest.mark.parametrize("item", ["background", "background=0", "background=-1", "background=nan", "nerve=2"])
def test_bad_class_weights_are_refused_with_a_clear_message(flag, item, capsys):
    with pytest.raises(SystemExit):
        train_generator.parse_args([flag, item])
    assert f"{flag}: " in capsys.readouterr().err
