"""Fine-tune Stable Diffusion on PathMNIST train with a LoRA adapter on the UNet attention projections.

    python -m training.train_lora --base-model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --data-dir ../shared/data --device cuda --mixed-precision fp16 --output-dir runs/lora

The recipe is diffusers' train_text_to_image_lora.py: VAE, text encoder and UNet stay frozen and
only rank-r LoRA matrices on to_q/to_k/to_v/to_out.0 learn, from the MSE between the UNet output
and the scheduler's target (epsilon or v). Every class has one fixed prompt (pathgen.lora.class_prompt),
so its nine text embeddings are computed once. Tiles are upscaled bicubically from 28x28 to
--resolution. Every --checkpointing-steps the adapter and generator_config.json are written to
--output-dir, which `pathgen.generator.load_generator` then reads, next to a resumable checkpoint.pt.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pathgen.augment import random_dihedral
from pathgen.data import TISSUE_CLASSES, add_data_arguments, load_split
from pathgen.lora import class_prompt, write_generator_config

LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", required=True,
                        help="Diffusers Stable Diffusion checkpoint: a hub id (owner/name) or a local folder.")
    add_data_arguments(parser)
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N training images (tests).")
    parser.add_argument("--resolution", type=int, default=512, help="Side the 28x28 tiles are upscaled to (bicubic).")
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank (lora_alpha is set equal to it).")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (constant).")
    parser.add_argument("--batch-size", type=int, default=8, help="Training batch size.")
    parser.add_argument("--max-steps", type=int, default=3000, help="Total optimisation steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu",
                        help="Where to train (default: cuda when available).")
    parser.add_argument("--mixed-precision", choices=list(WEIGHT_DTYPES), default="no",
                        help="Frozen weights in fp16 (cuda only) or bf16 under autocast; the adapter stays fp32.")
    parser.add_argument("--output-dir", default="runs/lora",
                        help="Where the adapter, generator_config.json and checkpoint.pt go.")
    parser.add_argument("--checkpointing-steps", type=int, default=500,
                        help="Write the adapter and a resumable checkpoint every N steps (and at the end).")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="Continue from checkpoint.pt in --output-dir if there is one.")
    return parser.parse_args(argv)


@torch.no_grad()
def encode_prompts(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, device: torch.device) -> torch.Tensor:
    """Text-encoder hidden states of every class prompt, [num_classes, tokens, width]."""
    prompts = [class_prompt(tissue) for tissue in TISSUE_CLASSES]
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids.to(device))[0]


def tile_batch(tiles: torch.Tensor, resolution: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """uint8 [N, 3, 28, 28] -> randomly flipped/rotated floats in [-1, 1], [N, 3, resolution, resolution]."""
    small = random_dihedral(tiles.float() / 127.5 - 1, generator).to(device)
    return F.interpolate(small, size=(resolution, resolution), mode="bicubic", align_corners=False).clamp(-1, 1)


def save(output_dir: Path, unet: UNet2DConditionModel, checkpoint: dict, args: argparse.Namespace) -> None:
    """The loadable adapter folder, plus the state needed to resume."""
    StableDiffusionPipeline.save_lora_weights(
        output_dir, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True)
    # A local base model is recorded absolute so the folder still loads from another working directory.
    base = Path(args.base_model).expanduser()
    write_generator_config(output_dir, str(base.resolve()) if base.is_dir() else args.base_model, args.resolution)
    partial = output_dir / "checkpoint.pt.tmp"
    torch.save(checkpoint, partial)
    partial.replace(output_dir / "checkpoint.pt")  # never leave a half-written checkpoint behind


def main(args: argparse.Namespace) -> None:
    if args.mixed_precision == "fp16" and args.device != "cuda":
        raise ValueError("--mixed-precision fp16 needs --device cuda; use bf16 on CPU.")
    torch.manual_seed(args.seed)
    device, weight_dtype = torch.device(args.device), WEIGHT_DTYPES[args.mixed_precision]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = CLIPTokenizer.from_pretrained(args.base_model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(args.base_model, subfolder="text_encoder", dtype=weight_dtype)
    vae = AutoencoderKL.from_pretrained(args.base_model, subfolder="vae", dtype=weight_dtype)
    unet = UNet2DConditionModel.from_pretrained(args.base_model, subfolder="unet", dtype=weight_dtype)
    noise_scheduler = DDPMScheduler.from_pretrained(args.base_model, subfolder="scheduler")
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"{args.base_model} predicts {prediction_type!r}; only epsilon and v_prediction work.")
    for model in (text_encoder, vae, unet):
        model.requires_grad_(False).to(device)
    prompt_embeds = encode_prompts(tokenizer, text_encoder, device)
    del text_encoder  # the prompts never change, so its memory is better spent on the UNet

    # alpha = rank because diffusers' LoRA files store no alpha and load as if it were the rank.
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                target_modules=LORA_TARGET_MODULES))
    cast_training_params(unet, dtype=torch.float32)  # half-precision Adam updates would underflow
    lora_params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_params, lr=args.lr, weight_decay=1e-2)
    scaler = torch.amp.GradScaler(device.type, enabled=args.mixed_precision == "fp16")

    images, labels = load_split("train", args.data_dir, args.download)
    tiles = torch.from_numpy(images[: args.train_limit]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(labels[: args.train_limit])
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed = 0, 0.0
    checkpoint_file = output_dir / "checkpoint.pt"
    if args.resume and checkpoint_file.is_file():
        checkpoint = torch.load(checkpoint_file, weights_only=False)
        set_peft_model_state_dict(unet, checkpoint["lora"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        generator.set_state(checkpoint["generator"])
        step, elapsed = checkpoint["step"], checkpoint["elapsed_s"]
        print(f"resumed at step {step}", flush=True)
    print(f"LoRA parameters: {sum(p.numel() for p in lora_params) / 1e6:.2f}M, train images {len(tiles)}", flush=True)

    started = time.time() - elapsed
    progress = tqdm(total=args.max_steps, initial=step, desc="lora", mininterval=30)
    running = None
    unet.train()
    while step < args.max_steps:
        index = torch.randint(0, len(tiles), (args.batch_size,), generator=generator)
        pixels = tile_batch(tiles[index], args.resolution, device, generator).to(weight_dtype)
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), device=device)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        target = noise if prediction_type == "epsilon" else noise_scheduler.get_velocity(latents, noise, timesteps)
        with torch.autocast(device.type, dtype=weight_dtype, enabled=args.mixed_precision != "no"):
            prediction = unet(noisy, timesteps, prompt_embeds[labels[index].to(device)]).sample
        loss = F.mse_loss(prediction.float(), target.float())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(lora_params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", refresh=False)
        if step % args.checkpointing_steps == 0 or step == args.max_steps:
            save(output_dir, unet, {"lora": get_peft_model_state_dict(unet), "optimizer": optimizer.state_dict(),
                                    "scaler": scaler.state_dict(), "generator": generator.get_state(), "step": step,
                                    "elapsed_s": time.time() - started, "args": vars(args)}, args)
            record = {"step": step, "loss_ema": running, "elapsed_min": (time.time() - started) / 60}
            print(json.dumps(record), flush=True)
    progress.close()
    (output_dir / "training.json").write_text(json.dumps(
        {"steps": step, "train_wall_time_min": (time.time() - started) / 60, "final_loss_ema": running,
         "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main(parse_args())
