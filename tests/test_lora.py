"""The Stable Diffusion + LoRA backend, end to end on tiny random-weight components (offline, CPU)."""

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from pathgen.data import TISSUE_CLASSES
from pathgen.generation import load_generator, looks_like_hub_id
from pathgen.lora import LORA_WEIGHT_NAME, LoraGenerator, class_prompt
from tests.conftest import FIXTURE_DIR
from training import train_lora

TINY_CLIP = FIXTURE_DIR / "tiny_clip"


def save_tiny_stable_diffusion(folder: Path) -> None:
    """A diffusers SD folder with the real component classes at toy sizes: 32px images, 16px latents."""
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(TINY_CLIP, model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, sample_size=32)
    unet = UNet2DConditionModel(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=8)
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              steps_offset=1)
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)


def train_args(base: Path, out: Path, max_steps: int) -> list[str]:
    return ["--base-model", str(base), "--data-dir", str(FIXTURE_DIR), "--output-dir", str(out),
            "--resolution", "32", "--rank", "4", "--batch-size", "2", "--lr", "1e-2", "--device", "cpu",
            "--max-steps", str(max_steps), "--checkpointing-steps", "1", "--train-limit", "64"]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sd")
    save_tiny_stable_diffusion(folder)
    return folder


@pytest.fixture(scope="module")
def adapter_dir(base_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora")
    train_lora.main(train_lora.parse_args(train_args(base_model, out, max_steps=2)))
    return out


@pytest.fixture(scope="module")
def lora_generator(adapter_dir) -> LoraGenerator:
    return load_generator(adapter_dir)


def lora_up_weights(folder: Path) -> dict[str, torch.Tensor]:
    state = load_file(folder / LORA_WEIGHT_NAME)
    return {k: v for k, v in state.items() if "lora.up" in k or "lora_B" in k}


def test_class_prompts_are_distinct_domain_prompts():
    assert class_prompt(0) == "an H&E stained histopathology image of colorectal adipose tissue"
    prompts = [class_prompt(tissue) for tissue in TISSUE_CLASSES]
    assert len(set(prompts)) == len(prompts) and all("colorectal colorectal" not in p for p in prompts)


def test_training_writes_a_loadable_adapter(adapter_dir, base_model):
    config = json.loads((adapter_dir / "generator_config.json").read_text())
    assert {k: config[k] for k in ("backend", "base_model", "resolution")} == {
        "backend": "sd-lora", "base_model": str(base_model.resolve()), "resolution": 32}
    up = lora_up_weights(adapter_dir)
    assert up, "no LoRA up-projections saved"
    # peft's gaussian init starts every up-projection at zero, so non-zero means trained.
    assert all(weight.abs().sum() > 0 for weight in up.values())
    assert train_lora.checkpoint_step(adapter_dir) == 2
    # The accelerate checkpoint keeps the adapter, optimiser and RNG states, not the frozen UNet.
    checkpoint = adapter_dir / train_lora.CHECKPOINT_DIR
    assert (checkpoint / LORA_WEIGHT_NAME).is_file() and not list(checkpoint.glob("model*.safetensors"))
    assert list(checkpoint.glob("optimizer*")) and list(checkpoint.glob("random_states*"))


def test_training_resumes_from_checkpoint(adapter_dir, base_model, tmp_path):
    out = tmp_path / "lora"
    shutil.copytree(adapter_dir, out)
    train_lora.main(train_lora.parse_args(train_args(base_model, out, max_steps=3)))
    assert train_lora.checkpoint_step(out) == 3
    before, after = lora_up_weights(adapter_dir), lora_up_weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resumed_run_repeats_an_uninterrupted_one(adapter_dir, base_model, tmp_path):
    # Same batches, noise and optimiser state: the accelerate checkpoint restores everything that drives step 3.
    resumed = tmp_path / "resumed"
    shutil.copytree(adapter_dir, resumed)
    train_lora.main(train_lora.parse_args(train_args(base_model, resumed, max_steps=3)))
    straight = tmp_path / "straight"
    train_lora.main(train_lora.parse_args(train_args(base_model, straight, max_steps=3)))
    a, b = lora_up_weights(resumed), lora_up_weights(straight)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_gradient_accumulation_counts_optimisation_steps(base_model, tmp_path):
    out = tmp_path / "accumulated"
    train_lora.main(train_lora.parse_args(train_args(base_model, out, max_steps=2)
                                          + ["--gradient-accumulation-steps", "2", "--batch-size", "1"]))
    assert train_lora.checkpoint_step(out) == 2
    training = json.loads((out / "training.json").read_text())
    assert training["effective_batch"] == 2 and training["processes"] == 1


def test_loaded_adapter_matches_the_checkpoint(lora_generator, adapter_dir, base_model):
    fresh = UNet2DConditionModel.from_pretrained(base_model, subfolder="unet")
    fresh.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=train_lora.LORA_TARGET_MODULES))
    train_lora.load_adapter_into(fresh, adapter_dir / train_lora.CHECKPOINT_DIR)
    trained = get_peft_model_state_dict(fresh)
    unet = lora_generator.pipe.unet
    loaded = get_peft_model_state_dict(unet, adapter_name=unet.active_adapters()[0])
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[k], loaded[k]) for k in trained)


def test_guided_generation_through_img2img(lora_generator):
    examples = np.full((2, 28, 28, 3), (200, 120, 180), dtype=np.uint8)
    a = lora_generator.generate_guided(examples, 4, 3, strength=0.5, seed=5, steps=4)
    b = lora_generator.generate_guided(examples, 4, 3, strength=0.5, seed=5, steps=4)
    assert a.shape == (3, 28, 28, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    low = lora_generator.generate_guided(examples, 4, 3, strength=0.25, seed=5, steps=4).astype(float)
    high = lora_generator.generate_guided(examples, 4, 3, strength=1.0, seed=5, steps=4).astype(float)
    assert np.abs(low - examples[0]).mean() < np.abs(high - examples[0]).mean()
    with pytest.raises(ValueError, match="strength"):
        lora_generator.generate_guided(examples, 4, 3, strength=0.0)


def test_generate_shape_and_seed_determinism(lora_generator):
    a = lora_generator.generate(3, 2, seed=7, steps=2)
    b = lora_generator.generate(3, 2, seed=7, steps=2)
    c = lora_generator.generate(3, 2, seed=8, steps=2)
    assert a.shape == (2, 28, 28, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kwargs,match", [
    (dict(class_index=9, n=1), "Unknown tissue class"),
    (dict(class_index=0, n=0), "n must be"),
    (dict(class_index=0, n=1, steps=0), "steps must be"),
    (dict(class_index=0, n=1, guidance=-1.0), "guidance must be"),
])
def test_bad_arguments_are_rejected(lora_generator, kwargs, match):
    class_index, n = kwargs.pop("class_index"), kwargs.pop("n")
    with pytest.raises(ValueError, match=match):
        lora_generator.generate(class_index, n, **kwargs)


def test_missing_and_corrupt_folders(adapter_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        LoraGenerator.from_pretrained(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="generator_config.json"):
        LoraGenerator.from_pretrained(tmp_path)

    bad_config = tmp_path / "bad-config"
    shutil.copytree(adapter_dir, bad_config)
    (bad_config / "generator_config.json").write_text('{"backend": "sd-lora"}')
    with pytest.raises(ValueError, match="corrupt"):
        LoraGenerator.from_pretrained(bad_config)

    bad_weights = tmp_path / "bad-weights"
    shutil.copytree(adapter_dir, bad_weights)
    (bad_weights / LORA_WEIGHT_NAME).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="LoRA weights"):
        load_generator(bad_weights)


def adapter_copy_with(adapter_dir: Path, folder: Path, **sampling_defaults) -> Path:
    """A copy of the trained adapter folder whose generator_config.json sets the given sampling defaults."""
    shutil.copytree(adapter_dir, folder)
    config = json.loads((folder / "generator_config.json").read_text())
    for profile in config["sampling_profiles"].values() if "sampling_profiles" in config else [config["sampling_defaults"]]:
        profile.update(sampling_defaults)
    (folder / "generator_config.json").write_text(json.dumps(config))
    return folder


def test_guidance_interval_is_refused_because_stable_diffusion_guides_every_step(adapter_dir, tmp_path):
    folder = adapter_copy_with(adapter_dir, tmp_path / "interval", guidance_interval=[0.0, 0.8])
    with pytest.raises(ValueError, match="guides every step"):
        load_generator(folder)


def test_a_profile_network_of_its_own_is_refused_because_the_adapter_serves_every_profile(adapter_dir, tmp_path):
    with pytest.raises(ValueError, match="one adapter"):
        load_generator(adapter_copy_with(adapter_dir, tmp_path / "own", model="unet-bank"))


def test_sde_solver_setting_reaches_the_stable_diffusion_scheduler(adapter_dir, tmp_path):
    generator = load_generator(adapter_copy_with(adapter_dir, tmp_path / "sde", solver="sde-dpmsolver++"))
    assert generator.pipe.scheduler.config.algorithm_type == "sde-dpmsolver++"
    first = generator.generate(1, 2, seed=3, steps=2)
    np.testing.assert_array_equal(first, generator.generate(1, 2, seed=3, steps=2))


def test_unreachable_hub_id_says_so(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE once at import; patch the constant so nothing is attempted.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="Hugging Face Hub is unreachable.*local folder"):
        load_generator("pathgen-tests/no-such-adapter")


@pytest.mark.parametrize("text, expected", [
    ("runwayml/stable-diffusion-v1-5", True),
    ("./runs/lora", False),
    ("/abs/path/adapter", False),
    ("~/adapter", False),
    ("just-a-name", False),
    ("a/b/c", False),
])
def test_hub_ids_are_told_from_paths(text, expected):
    assert looks_like_hub_id(text) is expected


def test_existing_folder_is_never_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert not looks_like_hub_id("owner/name")
