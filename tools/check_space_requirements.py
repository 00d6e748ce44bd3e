"""Checks that every pin in requirements.txt has a wheel for the Python a Hugging Face Space will run.

    python -m tools.check_space_requirements [--requirements requirements.txt] [--readme README.md]

A Space runs the Python version named by `python_version` in README.md's front matter (3.10 when it names
none). This runs one pip resolver dry run over requirements.txt for that version on Linux x86-64, wheels
only and without dependencies (pip reads each wheel's metadata from the index; nothing large is
downloaded). It needs the network to PyPI, so CI runs it, not the test suite. Dependencies of the pins are
not resolved here, because torch's CUDA dependencies are not on every mirror; the pins are what can
break the build. Exit status 0 when every pin resolves, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPACE_DEFAULT_PYTHON = "3.10"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requirements", default=str(REPO / "requirements.txt"), help="The requirements file to check.")
    parser.add_argument("--readme", default=str(REPO / "README.md"), help="README.md with the Space's front matter.")
    parser.add_argument("--python-version", default=None,
                        help="Check this Python version instead of the one the front matter names.")
    return parser.parse_args(argv)


def space_python_version(readme: str) -> str:
    """`python_version` from the README's YAML front matter, else the Space default."""
    match = re.match(r"---\n(.*?)\n---\n", readme, re.DOTALL)
    if match:
        for line in match.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "python_version":
                return value.strip().strip("\"'")
    return SPACE_DEFAULT_PYTHON


def resolve_pins(requirements: Path, python_version: str) -> tuple[int, str, list[str]]:
    """(pip's exit status, its error output, the wheels it chose)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                   "--only-binary", ":all:", "--python-version", python_version, "--implementation", "cp",
                   *(f"--platform={p}" for p in PLATFORMS), "--target", str(Path(folder) / "target"),
                   "--report", str(report), "--quiet", "-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = []
        if report.exists():
            wheels = [item["download_info"]["url"].rsplit("/", 1)[-1] for item in json.loads(report.read_text())["install"]]
        errors = "\n".join(line for line in done.stderr.splitlines() if "is ignored" not in line)
        return done.returncode, errors, wheels


def main(args: argparse.Namespace) -> int:
    version = args.python_version or space_python_version(Path(args.readme).read_text())
    status, errors, wheels = resolve_pins(Path(args.requirements), version)
    if status != 0:
        print(f"FAIL: not every pin in {args.requirements} has a wheel for CPython {version} on Linux x86-64:\n{errors}")
        return 1
    print(f"OK: all {len(wheels)} pins in {args.requirements} have wheels for CPython {version} on Linux x86-64 "
          f"(the Space's Python, from README.md's front matter).")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
