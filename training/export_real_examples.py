"""Write the few real PathMNIST tiles the app shows beside the synthetic ones.

    python -m training.export_real_examples --data-dir ../shared/data

Takes the first `--per-class` validation images of each class (NCT-CRC-HE-100K, CC BY 4.0): Explore shows a few,
the quizzes and the real-or-synthetic round draw from all of them. The classifier's probabilities for each tile are
stored beside them with the SHA-256 of its weights, so the app does not classify them again at every start.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pathgen.classifier import TissueClassifier
from pathgen.data import DATA_CITATION, add_data_arguments, load_split, per_class_indices


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--output", default="assets/real_examples.npz", help="Output .npz (images, labels, indices).")
    parser.add_argument("--per-class", type=int, default=64,
                        help="Real images per class (the quizzes draw their real tiles from these).")
    parser.add_argument("--classifier", default="assets/classifier",
                        help="Classifier whose probabilities for the tiles are stored with them.")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> None:
    images, labels = load_split("val", args.data_dir, download=args.download)
    keep = np.sort(per_class_indices(labels, args.per_class))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    classifier = TissueClassifier.from_pretrained(args.classifier)
    np.savez_compressed(output, images=images[keep], labels=labels[keep], indices=keep,
                        attribution=np.array(f"Real validation tiles. {DATA_CITATION}"),
                        probabilities=classifier.predict_proba(images[keep]).astype(np.float32),
                        classifier_sha256=np.array(TissueClassifier.weights_sha256(args.classifier)))
    print(f"wrote {output} ({len(keep)} images)")


if __name__ == "__main__":
    main(parse_args())
