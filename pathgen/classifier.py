"""A calibrated ResNet-18 tissue classifier for 28x28 PathMNIST tiles."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file, save_file
from torch import nn

from .augment import dihedral_view
from .data import NUM_CLASSES, check_images

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ClassifierConfig:
    num_classes: int = NUM_CLASSES
    # Per-channel statistics of the PathMNIST train split, in 0..1 units.
    mean: list[float] = field(default_factory=lambda: [0.7405, 0.5330, 0.7058])
    std: list[float] = field(default_factory=lambda: [0.1237, 0.1768, 0.1244])
    temperature: float = 1.0
    # Average logits over the eight flips/rotations at prediction time (tissue has no orientation);
    # train_classifier turns it on only where it raises validation accuracy.
    dihedral_tta: bool = False


def build_resnet18(num_classes: int) -> nn.Module:
    """torchvision ResNet-18 for 28x28 input: a 3x3 stride-1 stem keeps the 7x7 stem from
    discarding most of a tiny tile; the max-pool stays so that layer1 runs at 14x14."""
    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return model


class TissueClassifier(nn.Module):
    """ResNet-18 plus temperature scaling; `predict_proba` takes uint8 RGB tiles."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        self.network = build_resnet18(self.config.num_classes)
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.config.std).view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Floats in [0, 1], [N, 3, 28, 28] -> network input."""
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits for floats in [0, 1], [N, 3, 28, 28]."""
        return self.network(self.normalise(images))

    def predict_views(self, images: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits, averaged over the eight dihedral views when `dihedral_tta` is set."""
        if not self.config.dihedral_tta:
            return self(images)
        # One view at a time keeps peak memory that of a single pass.
        return sum(self(dihedral_view(images, k)) for k in range(8)) / 8

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate (512-d, after global pooling) features for floats in [0, 1]."""
        net = self.network
        x = self.normalise(images)
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
        return torch.flatten(net.avgpool(x), 1)

    @staticmethod
    def to_tensor(images: np.ndarray) -> torch.Tensor:
        """Validated uint8 [N, 28, 28, 3] (or one [28, 28, 3]) -> floats [N, 3, 28, 28] in [0, 1]."""
        array = check_images(images)
        return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float() / 255.0

    @torch.no_grad()
    def predict_logits(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Calibrated logits (divided by the fitted temperature), float32 [N, 9]."""
        self.eval()
        tensor = self.to_tensor(images)
        chunks = [self.predict_views(tensor[i : i + batch_size]) for i in range(0, len(tensor), batch_size)]
        return (torch.cat(chunks) / self.config.temperature).numpy().astype(np.float32)

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Calibrated class probabilities, float32 [N, 9], rows summing to 1."""
        logits = torch.from_numpy(self.predict_logits(images, batch_size))
        return torch.softmax(logits, dim=1).numpy()

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Penultimate-layer embeddings, float32 [N, 512], for realism metrics."""
        self.eval()
        tensor = self.to_tensor(images)
        chunks = [self.embed(tensor[i : i + batch_size]) for i in range(0, len(tensor), batch_size)]
        return torch.cat(chunks).numpy().astype(np.float32)

    def save_pretrained(self, path: str | os.PathLike, half: bool = True) -> None:
        """Writes config.json and model.safetensors (fp16 by default: half the size, same accuracy)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            name: (t.half() if half and t.is_floating_point() else t).contiguous()
            for name, t in self.network.state_dict().items()
        }
        save_file(state, folder / WEIGHTS_NAME)
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @staticmethod
    def weights_sha256(path: str | os.PathLike) -> str:
        """SHA-256 of a saved classifier's weights file: names the model whose outputs were stored elsewhere."""
        return hashlib.sha256((Path(path) / WEIGHTS_NAME).read_bytes()).hexdigest()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> TissueClassifier:
        """Loads a folder written by `save_pretrained`; clear errors for missing or corrupt files."""
        folder = Path(path)
        config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for required in (config_file, weights_file):
            if not required.is_file():
                raise FileNotFoundError(
                    f"Classifier file {required} is missing. Rebuild it with "
                    "`python -m training.train_classifier` or restore assets/classifier/."
                )
        try:
            config = ClassifierConfig(**json.loads(config_file.read_text()))
            model = cls(config)
            state = load_file(weights_file)
            model.network.load_state_dict({k: v.float() if v.is_floating_point() else v
                                           for k, v in state.items()})
        except Exception as error:
            raise ValueError(
                f"Classifier in {folder} is corrupt or incompatible ({error}). Rebuild it with "
                "`python -m training.train_classifier`."
            ) from error
        return model.eval()
