"""Fine-tune Stable Diffusion on PathMNIST train with a LoRA adapter on the UNet attention projections.

    python -m training.train_lora --base-model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --data-dir ../shared/data --mixed-precision fp16 --output-dir runs/lora
    accelerate launch --multi_gpu --num_processes 4 -m training.train_lora --base-model ... \\
        --mixed-precision fp16 --gradient-accumulation-steps 2 --output-dir runs/lora

The recipe is diffusers' train_text_to_image_lora.py, on `accelerate` as there: VAE, text encoder and UNet stay
frozen and only rank-r LoRA matrices on to_q/to_k/to_v/to_out.0 learn, from the MSE between the UNet output and
the scheduler's target (epsilon or v). `accelerate launch` runs it data-parallel on several GPUs or machines (each
process draws its own batches, so the effective batch is --batch-size x processes x accumulation steps); plain
`python -m` runs one process. Every class has one fixed prompt (pathgen.lora.class_prompt), so its nine text
embeddings are computed once. Tiles are upscaled bicubically from 28x28 to --resolution. Every
--checkpointing-steps the adapter and generator_config.json are written to --output-dir, which
`pathgen.generation.load_generator` then reads, and the accelerate state (adapter, optimiser, RNGs) to
--output-dir/checkpoint, from which a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from pathgen.augment import random_dihedral
from pathgen.data import TISSUE_CLASSES, add_data_arguments, load_split
from pathgen.lora import class_prompt, write_lora_config

LORA_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHECKPOINT_DIR = "checkpoint"
PROGRESS_FILE = "progress.json"  # in the checkpoint folder: the optimisation step it was saved at


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", required=True,
                        help="Diffusers Stable Diffusion checkpoint: a hub id (owner/name) or a local folder.")
    add_data_arguments(parser)
    parser.add_argument("--train-limit", type=int, default=None, help="Use only the first N training images (tests).")
    parser.add_argument("--resolution", type=int, default=512, help="Side the 28x28 tiles are upscaled to (bicubic).")
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank (lora_alpha is set equal to it).")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (constant).")
    parser.add_argument("--batch-size", type=int, default=8, help="Training batch size per process.")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1,
                        help="Batches whose gradients add up to one optimisation step.")
    parser.add_argument("--max-steps", type=int, default=3000, help="Total optimisation steps.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: what accelerate picks (each process's GPU when there is one); cpu: force CPU; "
                             "cuda: fail unless there is a GPU.")
    parser.add_argument("--mixed-precision", choices=list(WEIGHT_DTYPES), default="no",
                        help="Frozen weights in fp16 (GPU only) or bf16, under accelerate's autocast; the adapter stays fp32.")
    parser.add_argument("--output-dir", default="runs/lora",
                        help="Where the adapter, generator_config.json and the checkpoint folder go.")
    parser.add_argument("--checkpointing-steps", type=int, default=500,
                        help="Write the adapter and a resumable checkpoint every N steps (and at the end).")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="Continue from --output-dir/checkpoint if there is one.")
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


def save_adapter(folder: Path, unet: UNet2DConditionModel) -> None:
    """The adapter in diffusers' LoRA format, which `load_lora_weights` reads."""
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True)


def load_adapter_into(unet: UNet2DConditionModel, folder: str | Path) -> None:
    """Loads an adapter written by `save_adapter` into a UNet that already has a LoRA adapter of the same shape."""
    state, _ = StableDiffusionPipeline.lora_state_dict(folder)
    state = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")})
    incompatible = set_peft_model_state_dict(unet, state, adapter_name="default")
    if getattr(incompatible, "unexpected_keys", None):
        raise ValueError(f"{folder} holds LoRA weights this UNet lacks: {incompatible.unexpected_keys[:3]}")


def register_adapter_checkpointing(accelerator: Accelerator) -> None:
    """accelerate's save_state/load_state keep only the adapter, not the frozen multi-GB UNet (as diffusers does)."""
    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for model in models:
                save_adapter(Path(output_dir), accelerator.unwrap_model(model))
                weights.pop()  # accelerate would otherwise save the whole UNet

    def load_hook(models, input_dir):
        while models:
            load_adapter_into(accelerator.unwrap_model(models.pop()), input_dir)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def checkpoint_step(output_dir: str | Path) -> int | None:
    """The step of the checkpoint in `output_dir`, or None without one."""
    progress = Path(output_dir) / CHECKPOINT_DIR / PROGRESS_FILE
    return json.loads(progress.read_text())["step"] if progress.is_file() else None


def save_checkpoint(accelerator: Accelerator, args: argparse.Namespace, unet: torch.nn.Module, step: int,
                    elapsed_s: float) -> None:
    """The loadable adapter folder, and the accelerate state to resume from (swapped in whole, never half-written)."""
    output_dir = Path(args.output_dir)
    partial, final = output_dir / f"{CHECKPOINT_DIR}.tmp", output_dir / CHECKPOINT_DIR
    accelerator.save_state(str(partial))
    if accelerator.is_main_process:
        save_adapter(output_dir, accelerator.unwrap_model(unet))
        # A local base model is recorded absolute so the folder still loads from another working directory.
        base = Path(args.base_model).expanduser()
        write_lora_config(output_dir, str(base.resolve()) if base.is_dir() else args.base_model, args.resolution)
        (partial / PROGRESS_FILE).write_text(json.dumps({"step": step, "elapsed_s": elapsed_s, "args": vars(args)}))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    accelerator.wait_for_everyone()


def load_models(args: argparse.Namespace, device: torch.device, weight_dtype: torch.dtype):
    """Frozen VAE and UNet on `device`, the class prompts' embeddings, and the noise scheduler."""
    tokenizer = CLIPTokenizer.from_pretrained(args.base_model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(args.base_model, subfolder="text_encoder", dtype=weight_dtype)
    vae = AutoencoderKL.from_pretrained(args.base_model, subfolder="vae", dtype=weight_dtype)
    unet = UNet2DConditionModel.from_pretrained(args.base_model, subfolder="unet", dtype=weight_dtype)
    noise_scheduler = DDPMScheduler.from_pretrained(args.base_model, subfolder="scheduler")
    if noise_scheduler.config.prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"{args.base_model} predicts {noise_scheduler.config.prediction_type!r}; "
                         "only epsilon and v_prediction work.")
    for model in (text_encoder, vae, unet):
        model.requires_grad_(False).to(device)
    prompt_embeds = encode_prompts(tokenizer, text_encoder, device)
    # alpha = rank because diffusers' LoRA files store no alpha and load as if it were the rank.
    unet.add_adapter(LoraConfig(r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                                target_modules=LORA_TARGET_MODULES))
    cast_training_params(unet, dtype=torch.float32)  # half-precision Adam updates would underflow
    return vae, unet, prompt_embeds, noise_scheduler


def batch_generator(seed: int, process: int, micro_step: int) -> torch.Generator:
    """Each process, and each batch, gets its own draw, which a resumed run repeats exactly."""
    return torch.Generator().manual_seed(int(np.random.default_rng([seed, process, micro_step]).integers(2**63)))


def main(args: argparse.Namespace) -> None:
    if args.mixed_precision == "fp16" and (args.device == "cpu" or not torch.cuda.is_available()):
        raise ValueError("--mixed-precision fp16 needs a GPU; use bf16 on CPU.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no GPU.")
    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.device == "cpu",
                              gradient_accumulation_steps=args.gradient_accumulation_steps)
    set_seed(args.seed)
    device, weight_dtype = accelerator.device, WEIGHT_DTYPES[args.mixed_precision]
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    vae, unet, prompt_embeds, noise_scheduler = load_models(args, device, weight_dtype)
    lora_params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_params, lr=args.lr, weight_decay=1e-2)
    register_adapter_checkpointing(accelerator)
    unet, optimizer = accelerator.prepare(unet, optimizer)

    images, labels = load_split("train", args.data_dir, args.download)
    tiles = torch.from_numpy(images[: args.train_limit]).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(labels[: args.train_limit])
    step, elapsed = 0, 0.0
    if args.resume and checkpoint_step(output_dir) is not None:
        accelerator.load_state(str(output_dir / CHECKPOINT_DIR))
        progress_record = json.loads((output_dir / CHECKPOINT_DIR / PROGRESS_FILE).read_text())
        step, elapsed = progress_record["step"], progress_record["elapsed_s"]
        accelerator.print(f"resumed at step {step}")
    accelerator.print(f"LoRA parameters: {sum(p.numel() for p in lora_params) / 1e6:.2f}M, train images {len(tiles)}, "
                      f"processes {accelerator.num_processes}")
    running = train_loop(accelerator, args, (vae, unet, optimizer, lora_params, prompt_embeds, noise_scheduler),
                         (tiles, labels), step, time.time() - elapsed)
    if accelerator.is_main_process:
        (output_dir / "training.json").write_text(json.dumps(
            {"steps": args.max_steps, "final_loss_ema": running, "processes": accelerator.num_processes,
             "effective_batch": args.batch_size * accelerator.num_processes * args.gradient_accumulation_steps,
             "args": vars(args)}, indent=2) + "\n")
    accelerator.end_training()


def train_loop(accelerator: Accelerator, args: argparse.Namespace, models: tuple, data: tuple, step: int,
               started: float) -> float | None:
    """Optimisation steps from `step` to --max-steps; returns the smoothed loss."""
    vae, unet, optimizer, lora_params, prompt_embeds, noise_scheduler = models
    tiles, labels = data
    device, weight_dtype = accelerator.device, WEIGHT_DTYPES[args.mixed_precision]
    progress = tqdm(total=args.max_steps, initial=step, desc="lora", mininterval=30,
                    disable=not accelerator.is_local_main_process)
    running, micro_step = None, step * args.gradient_accumulation_steps
    unet.train()
    while step < args.max_steps:
        generator = batch_generator(args.seed, accelerator.process_index, micro_step)
        micro_step += 1
        with accelerator.accumulate(unet):
            index = torch.randint(0, len(tiles), (args.batch_size,), generator=generator)
            pixels = tile_batch(tiles[index], args.resolution, device, generator).to(weight_dtype)
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), device=device)
            noisy = noise_scheduler.add_noise(latents, noise, timesteps)
            target = (noise if noise_scheduler.config.prediction_type == "epsilon"
                      else noise_scheduler.get_velocity(latents, noise, timesteps))
            prediction = unet(noisy, timesteps, prompt_embeds[labels[index].to(device)]).sample
            loss = F.mse_loss(prediction.float(), target.float())
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(lora_params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if not accelerator.sync_gradients:
            continue
        step += 1
        progress.update(1)
        progress.set_postfix(loss=f"{running:.4f}", refresh=False)
        if step % args.checkpointing_steps == 0 or step == args.max_steps:
            save_checkpoint(accelerator, args, unet, step, time.time() - started)
            accelerator.print(json.dumps({"step": step, "loss_ema": running, "elapsed_min": (time.time() - started) / 60}))
    progress.close()
    return running


if __name__ == "__main__":
    main(parse_args())
