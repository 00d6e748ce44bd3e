"""Recompute every figure in assets/classifier/metrics.json from the shipped weights.

    python -m training.evaluate_classifier --data-dir ../shared/data

Reports val and test (CRC-VAL-HE-7K, another centre) accuracy, macro-F1, per-class recall,
and expected calibration error with and without the fitted temperature, and draws the test
confusion matrix.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pathgen.classifier import TissueClassifier  # noqa: E402
from pathgen.data import CLASS_NAMES, add_data_arguments, load_split  # noqa: E402
from pathgen.metrics import classification_report, expected_calibration_error  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--classifier", default="assets/classifier", help="Folder written by save_pretrained.")
    parser.add_argument("--output-dir", default=None,
                        help="Where metrics.json and confusion_matrix.png go (default: the classifier folder).")
    return parser.parse_args(argv)


def evaluate_split(model: TissueClassifier, images: np.ndarray, labels: np.ndarray) -> dict:
    calibrated_logits = model.predict_logits(images)
    probabilities = torch.softmax(torch.from_numpy(calibrated_logits), dim=1).numpy()
    raw_probabilities = torch.softmax(torch.from_numpy(calibrated_logits * model.config.temperature), dim=1).numpy()
    report = classification_report(labels, probabilities.argmax(axis=1))
    report["ece"] = expected_calibration_error(probabilities, labels)
    report["ece_without_temperature"] = expected_calibration_error(raw_probabilities, labels)
    report["images"] = int(len(labels))
    return report


def plot_confusion(matrix: np.ndarray, title: str, path: Path) -> None:
    normalised = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    figure, axis = plt.subplots(figsize=(8, 7))
    axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(matrix)):
        for col in range(len(matrix)):
            axis.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=8,
                      color="white" if normalised[row, col] > 0.5 else "black")
    axis.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(args: argparse.Namespace) -> dict:
    model = TissueClassifier.from_pretrained(args.classifier)
    output_dir = Path(args.output_dir or args.classifier)
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"temperature": model.config.temperature}
    for split in ("val", "test"):
        images, labels = load_split(split, args.data_dir, args.download)
        metrics[split] = evaluate_split(model, images, labels)
    metrics["test"]["per_class_recall"] = {name: v["recall"] for name, v in metrics["test"]["per_class"].items()}
    metrics["reproduce"] = "python -m training.evaluate_classifier --data-dir <folder with pathmnist.npz>"
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(np.array(metrics["test"]["confusion_matrix"]),
                   f"Test (CRC-VAL-HE-7K), accuracy {metrics['test']['accuracy']:.3f}", output_dir / "confusion_matrix.png")
    for split in ("val", "test"):
        m = metrics[split]
        print(f"{split}: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  ECE {m['ece']:.4f} "
              f"(without temperature {m['ece_without_temperature']:.4f})")
    print("test recall per class: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics["test"]["per_class_recall"].items()))
    return metrics


if __name__ == "__main__":
    main(parse_args())
