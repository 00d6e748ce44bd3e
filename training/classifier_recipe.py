"""The classifier recipe of train_classifier (ResNet-18, SGD with a one-cycle schedule, label smoothing, dihedral
and optional stain/colour augmentation), shared with the augmentation study so that every arm trains the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pathgen.augment import colour_jitter, random_dihedral, stain_jitter
from pathgen.classifier import ClassifierConfig, TissueClassifier
from pathgen.metrics import classification_report


def augment(batch: torch.Tensor, stain_strength: float, generator: torch.Generator) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> randomly flipped/rotated floats in [0, 1], with HED stain and colour jitter if
    `stain_strength` > 0."""
    images = random_dihedral(batch.float() / 255.0, generator)
    if stain_strength > 0:
        images = stain_jitter(images, stain_strength, generator)
        images = colour_jitter(images, generator=generator)
    return images.contiguous(memory_format=torch.channels_last)


@dataclass
class Recipe:
    """train_classifier's defaults, counted in optimisation steps so that small and large training sets get the
    same compute."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    stain_strength: float = 0.0
    bf16: bool = False


def batch_indices(n: int, steps: int, batch_size: int, generator: torch.Generator):
    """`steps` batches of shuffled positions, reshuffled after every pass; a set smaller than a batch is one batch."""
    size, order = min(batch_size, n), torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < size:
            order = torch.cat([order, torch.randperm(n, generator=generator)])
        yield order[:size]
        order = order[size:]


def train(images: np.ndarray, labels: np.ndarray, recipe: Recipe, seed: int) -> TissueClassifier:
    """A ResNet-18 trained on uint8 [N, 28, 28, 3] tiles for `recipe.steps` steps (no calibration)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tiles = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    model = TissueClassifier(ClassifierConfig()).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True,
                                weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=recipe.steps,
                                                   pct_start=0.15)
    for index in batch_indices(len(tiles), recipe.steps, recipe.batch_size, generator):
        batch = augment(tiles[index], recipe.stain_strength, generator)
        optimization_step(model, optimizer, schedule, batch, targets[index], recipe.label_smoothing, recipe.bf16)
    return model.eval()


def optimization_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule, images: torch.Tensor,
                      targets: torch.Tensor, label_smoothing: float, bf16: bool) -> torch.Tensor:
    """One cross-entropy step of the classifier recipe; returns the (detached) loss."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(images)
    loss = torch.nn.functional.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.detach()


def score(model: TissueClassifier, images: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy and macro-F1 of single-view predictions."""
    report = classification_report(labels, model.predict_logits(images).argmax(1))
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
