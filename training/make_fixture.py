"""Write the small real PathMNIST subset that the tests use, in medmnist's own file layout.

    python -m training.make_fixture --data-dir ../shared/data --output-dir tests/fixtures

It takes the first `--per-class` images of every class from each split, so that
`medmnist.PathMNIST(split=..., root="tests/fixtures")` loads it like the official file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pathgen.data import DATA_CITATION, DATA_FILE_NAME, SPLITS, load_split, per_class_indices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="Folder with the full pathmnist.npz.")
    parser.add_argument("--output-dir", default="tests/fixtures", help="Where the subset's pathmnist.npz goes.")
    parser.add_argument("--per-class", type=int, default=18, help="Images per class per split (18 keeps the file under 1 MB).")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    arrays = {}
    for split in SPLITS:
        images, labels = load_split(split, args.data_dir)
        keep = np.sort(per_class_indices(labels, args.per_class))  # official index order
        arrays[f"{split}_images"] = images[keep]
        arrays[f"{split}_labels"] = labels[keep].reshape(-1, 1).astype(np.uint8)
        arrays[f"{split}_indices"] = keep
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output / DATA_FILE_NAME, **arrays)
    (output / "LICENSE-DATA.md").write_text(
        "# Test fixture: a subset of PathMNIST\n\n"
        f"The first {args.per_class} images of each class from each split (`*_indices` hold the official indices), "
        "written by `python -m training.make_fixture`.\n\n"
        f"{DATA_CITATION}\n\nLicence: Creative Commons Attribution 4.0 International "
        "(https://creativecommons.org/licenses/by/4.0/).\n")
    print(f"wrote {output / DATA_FILE_NAME} ({(output / DATA_FILE_NAME).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main(parse_args())
