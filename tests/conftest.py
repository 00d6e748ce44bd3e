import os
import tempfile
from pathlib import Path

import pytest
import torch

from pathgen.classifier import TissueClassifier
from pathgen.generator import PixelDiffusionGenerator, UNetShape, build_noise_scheduler, build_unet

# Apps built by tests keep their database in a throw-away folder, never in the user's ~/.cache/pathgen.
os.environ["PATHGEN_STATE_DIR"] = tempfile.mkdtemp(prefix="pathgen-test-state-")

REPO = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO / "tests" / "fixtures"
ASSETS = REPO / "assets"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE_DIR


@pytest.fixture(autouse=True)
def _no_network_data_dir(monkeypatch):
    # Tests must never reach for ../shared or ~/.medmnist by accident.
    monkeypatch.setenv("PATHGEN_DATA_DIR", str(FIXTURE_DIR))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules that run real models: on a loaded machine two OpenMP threads run many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def save_tiny_models(folder: Path) -> None:
    """A random tiny generator in folder/gen and a random classifier in folder/clf."""
    torch.manual_seed(0)
    unet = build_unet(UNetShape(block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=8))
    PixelDiffusionGenerator(unet, dict(build_noise_scheduler().config), bf16=False).save_pretrained(folder / "gen")
    TissueClassifier().eval().save_pretrained(folder / "clf")
