from pathlib import Path

import pytest

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
