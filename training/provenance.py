"""What a result records about how it was made: the command that repeats it and the exact models behind it."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path


def command_line(module: str, args: argparse.Namespace) -> str:
    """The command that repeats a run of `python -m module` with every setting spelled out.

    Each setting is spelled `--dest` (underscores as hyphens), so the script must accept every flag under its
    dest's spelling, and booleans become `--flag` / `--no-flag`, so it must declare them with
    BooleanOptionalAction; tests/test_provenance.py checks both for every script that records a command.
    """
    flags = []
    for name, value in vars(args).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            flags.append(" ".join([flag, *map(str, value)]))
        elif value is not None:
            flags.append(f"{flag} {value}")
    return f"python -m {module} " + " ".join(flags)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_model(folder: str | Path) -> dict:
    """The folder and the sha256 of its weights and configs, so a result names the exact model that made it."""
    folder = Path(folder)
    # Reports saved beside a model (training.json, metrics.json) must not change its identity.
    files = sorted(f for f in folder.rglob("*")
                   if f.suffix == ".safetensors" or (f.suffix == ".json" and "config" in f.name))
    return {"path": str(folder), "sha256": {str(f.relative_to(folder)): file_sha256(f) for f in files}}
