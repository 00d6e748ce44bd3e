"""Batch augmentations for H&E tiles: the eight dihedral symmetries and stain jitter."""

from __future__ import annotations

import torch

# Ruifrok & Johnston's stain vectors (haematoxylin, eosin, DAB) as rows, RGB optical density.
_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
_RGB_FROM_HED = _RGB_FROM_HED / _RGB_FROM_HED.norm(dim=1, keepdim=True)
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)


def dihedral_view(images: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0-7) of the eight flips/rotations of [..., H, W]: k % 4 quarter turns, mirrored first if k >= 4."""
    return torch.rot90(images.flip(-1) if k >= 4 else images, k % 4, dims=(-2, -1))


def random_dihedral(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Applies one of the 8 flips/rotations per image (tissue has no orientation). [N, C, H, W]."""
    n = images.shape[0]
    choice = torch.randint(0, 8, (n,), generator=generator)
    out = images.clone()
    for k in range(8):
        picked = choice == k
        if picked.any():
            out[picked] = dihedral_view(images[picked], k)
    return out


def stain_jitter(
    images: torch.Tensor,
    strength: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Scales and shifts each image's H, E and D stain concentrations, as scanners and labs differ.

    `images` are floats in [0, 1], [N, 3, H, W]. `strength` is the half-width of the uniform
    multiplicative (1 +/- strength) and additive (+/- strength) perturbation in optical density.
    """
    n = images.shape[0]
    optical_density = -torch.log(images.clamp(min=1 / 255))
    hed = torch.einsum("nchw,cd->ndhw", optical_density, _HED_FROM_RGB.to(images))
    scale = 1 + (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * strength * 4
    shift = (torch.rand(n, 3, 1, 1, generator=generator) * 2 - 1) * strength
    hed = hed * scale.to(images) + shift.to(images)
    rgb = torch.exp(-torch.einsum("ndhw,dc->nchw", hed, _RGB_FROM_HED.to(images)))
    return rgb.clamp(0, 1)


def colour_jitter(
    images: torch.Tensor,
    brightness: float = 0.15,
    contrast: float = 0.2,
    saturation: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image brightness, contrast and saturation jitter on floats in [0, 1], [N, 3, H, W]."""
    n = images.shape[0]

    def factor(amount: float) -> torch.Tensor:
        return (1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * amount).to(images)

    images = images * factor(brightness)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = (images - mean) * factor(contrast) + mean
    grey = (0.299 * images[:, :1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:])
    images = (images - grey) * factor(saturation) + grey
    return images.clamp(0, 1)
