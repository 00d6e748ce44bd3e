"""An independent judge for realism figures: a small ConvNeXt (timm) trained apart from the filter.

The shipped classifier (ResNet-18) filters the bank, so figures in its features partly measure what it was
asked to accept. The judge has another architecture, another seed and its own training run; it only
reports (`evaluate_generator`), and must never filter, tune or select anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from timm.models.convnext import ConvNeXt
from torch import nn

from .data import NUM_CLASSES, check_images

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
REBUILD = "python -m training.train_judge --data-dir DATA_DIR"


@dataclass
class JudgeConfig:
    num_classes: int = NUM_CLASSES
    # Stage widths and depths of a ConvNeXt for 28x28 tiles: a 1x1 stem and an empty first stage keep full
    # resolution cheap, then 14x14, 7x7 and 3x3 stages; the last width is the feature size.
    dims: list[int] = field(default_factory=lambda: [24, 48, 96, 192])
    depths: list[int] = field(default_factory=lambda: [0, 1, 2, 1])
    kernel_size: int = 7
    mean: list[float] = field(default_factory=lambda: [0.7405, 0.5330, 0.7058])
    std: list[float] = field(default_factory=lambda: [0.1237, 0.1768, 0.1244])


def build_convnext(config: JudgeConfig) -> ConvNeXt:
    return ConvNeXt(num_classes=config.num_classes, dims=tuple(config.dims), depths=tuple(config.depths),
                    kernel_sizes=config.kernel_size, patch_size=1)


class TissueJudge(nn.Module):
    """ConvNeXt classifier of uint8 RGB tiles whose pooled features serve as a second feature space."""

    def __init__(self, config: JudgeConfig | None = None) -> None:
        super().__init__()
        self.config = config or JudgeConfig()
        self.network = build_convnext(self.config)
        self.register_buffer("mean", torch.tensor(self.config.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(self.config.std).view(1, 3, 1, 1))

    @property
    def feature_dim(self) -> int:
        return self.config.dims[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for floats in [0, 1], [N, 3, 28, 28]."""
        return self.network((images - self.mean) / self.std)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled, normalised features before the last linear layer, for floats in [0, 1]."""
        hidden = self.network.forward_features((images - self.mean) / self.std)
        return self.network.forward_head(hidden, pre_logits=True)

    @torch.no_grad()
    def _run(self, images: np.ndarray, method, batch_size: int) -> np.ndarray:
        self.eval()
        array = check_images(images)
        chunks = []
        for start in range(0, len(array), batch_size):
            tensor = torch.from_numpy(np.ascontiguousarray(array[start : start + batch_size]))
            chunks.append(method(tensor.permute(0, 3, 1, 2).float() / 255.0))
        return torch.cat(chunks).numpy().astype(np.float32)

    def features(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Judge features, float32 [N, feature_dim], of uint8 tiles [N, 28, 28, 3]."""
        return self._run(images, self.embed, batch_size)

    def predict_proba(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Class probabilities, float32 [N, 9] (uncalibrated: the judge reports agreement, not confidence)."""
        return self._run(images, lambda x: torch.softmax(self(x), dim=1), batch_size)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Writes config.json and model.safetensors in fp16."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: (t.half() if t.is_floating_point() else t).contiguous()
                 for name, t in self.network.state_dict().items()}
        save_file(state, folder / WEIGHTS_NAME)
        (folder / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> TissueJudge:
        """Loads a folder written by `save_pretrained`; clear errors for missing or corrupt files."""
        folder = Path(path)
        for required in (folder / CONFIG_NAME, folder / WEIGHTS_NAME):
            if not required.is_file():
                raise FileNotFoundError(f"Judge file {required} is missing. Rebuild it with `{REBUILD}` "
                                        "or restore assets/judge/.")
        try:
            model = cls(JudgeConfig(**json.loads((folder / CONFIG_NAME).read_text())))
            state = load_file(folder / WEIGHTS_NAME)
            model.network.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        except Exception as error:
            raise ValueError(f"Judge in {folder} is corrupt or incompatible ({error}). "
                             f"Rebuild it with `{REBUILD}`.") from error
        return model.eval()
