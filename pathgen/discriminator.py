"""Discriminator guidance (Kim et al., ICML 2023): a small network that tells noisy real tiles from noisy
generated ones, and the sampler correction its gradient gives.

With D(x_t) the probability that a noisy tile is real, the real data's score is the model's score plus
grad log(D / (1 - D)), the gradient of D's logit. For a v-prediction model at x_t = alpha x0 + sigma eps,
that correction is v' = v - w (sigma / alpha) grad logit, with the weight w of the sampling profile.
The discriminator is conditioned on the class and on the noise level sigma / alpha (EDM's sigma), and is
trained and applied only up to `MAX_SIGMA`: at higher noise real and generated tiles cannot be told apart.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .data import NUM_CLASSES, resolve_class

FOLDER_NAME = "discriminator"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MIN_SIGMA = 0.002
MAX_SIGMA = 10.0
REBUILD = "`python -m training.train_discriminator --generator GENERATOR_FOLDER --data-dir DATA_DIR`"


@dataclass
class DiscriminatorConfig:
    channels: tuple[int, ...] = (32, 64, 128)
    embed_dim: int = 64
    num_classes: int = NUM_CLASSES
    # Keys of the tissue classes it was trained on (empty: all). Guidance corrects tiles of these classes only: for a
    # class it never saw generated, its logit says nothing about that class's samples.
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.classes = tuple(resolve_class(key).key for key in self.classes)


def vp_noise(x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = alpha x0 + sigma_vp eps with alpha = 1 / sqrt(1 + sigma^2): the variance-preserving tile whose EDM
    noise level is `sigma` ([n]), as the UNet's scheduler makes it."""
    alpha = (1 + sigma**2).rsqrt().view(-1, 1, 1, 1)
    return alpha * (x0 + sigma.view(-1, 1, 1, 1) * noise)


class NoiseLevelEmbedding(nn.Module):
    """Fourier features of log sigma, then an MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.exp(torch.linspace(0, math.log(100), dim // 2)))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        angles = sigma.log().unsqueeze(1) / 4 * self.frequencies
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


class ConditionedBlock(nn.Module):
    """Conv, GroupNorm with a scale and shift from the condition, SiLU, then a stride-2 conv."""

    def __init__(self, channels_in: int, channels_out: int, embed_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, 3, padding=1)
        self.norm = nn.GroupNorm(8, channels_out, affine=False)
        self.film = nn.Linear(embed_dim, 2 * channels_out)
        self.down = nn.Conv2d(channels_out, channels_out, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(condition)[:, :, None, None].chunk(2, dim=1)
        return nn.functional.silu(self.down(nn.functional.silu(self.norm(self.conv(x)) * (1 + scale) + shift)))


class NoisyTileDiscriminator(nn.Module):
    """logit of P(real) for VP-noised tiles in [-1, 1] units, [n, 3, 28, 28], at EDM noise level `sigma` [n]."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiscriminatorConfig()
        dim, channels = self.config.embed_dim, self.config.channels
        self.noise_embedding = NoiseLevelEmbedding(dim)
        self.class_embedding = nn.Embedding(self.config.num_classes, dim)
        self.blocks = nn.ModuleList(ConditionedBlock(a, b, dim) for a, b in zip((3, *channels[:-1]), channels, strict=True))
        self.head = nn.Linear(channels[-1], 1)
        self.projection = nn.Embedding(self.config.num_classes, channels[-1])  # the class-projection term
        # Built once: guidance asks for it at every sampling step. Empty means every class.
        corrected = [resolve_class(key).index for key in self.config.classes]
        self.register_buffer("corrected_classes", torch.tensor(corrected, dtype=torch.long), persistent=False)

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        condition = self.noise_embedding(sigma) + self.class_embedding(labels)
        h = x_t
        for block in self.blocks:
            h = block(h, condition)
        pooled = h.mean(dim=(2, 3))
        return self.head(pooled).squeeze(1) + (self.projection(labels) * pooled).sum(dim=1)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS_NAME)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> NoisyTileDiscriminator:
        folder = Path(folder)
        try:
            raw = json.loads((folder / CONFIG_NAME).read_text())
            config = DiscriminatorConfig(**raw)
            model = cls(config)
            model.load_state_dict(load_file(folder / WEIGHTS_NAME))
        except Exception as error:
            raise ValueError(f"Discriminator in {folder} is missing, corrupt or incomplete ({error}). "
                             f"Rebuild it with {REBUILD}.") from error
        return model.eval()


def corrected_tiles(discriminator: nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """Bool [n]: the tiles whose class `discriminator` was trained on (every tile unless its config names classes)."""
    corrected = getattr(discriminator, "corrected_classes", None)
    if corrected is None or not len(corrected):
        return torch.ones(len(labels), dtype=torch.bool)
    return torch.isin(labels, corrected)


def logit_gradient(discriminator: nn.Module, x_t: torch.Tensor, sigma: float, labels: torch.Tensor) -> torch.Tensor:
    """grad_x logit D(x_t), the discriminator-guidance direction, in float32 whatever autocast is active."""
    with torch.enable_grad(), torch.autocast("cpu", enabled=False):
        x = x_t.detach().float().requires_grad_(True)
        levels = torch.full((len(x),), float(sigma))
        (gradient,) = torch.autograd.grad(discriminator(x, levels, labels).sum(), x)
    return gradient
