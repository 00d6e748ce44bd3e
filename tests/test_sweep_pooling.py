import numpy as np
import pytest

from pathgen.data import CLASS_NAMES, NUM_CLASSES
from training.sweep_pooling import between_sweep_spread, pooled_results


def result(guidance: float, correct: int, coverage: float, texture: dict | None = None, speed: float = 10.0) -> dict:
    """A sweep's figures for one setting: each class's first `correct` of 10 tiles labelled right, the rest as the
    next class."""
    counts = {}
    for c, name in enumerate(CLASS_NAMES):
        row = [0] * NUM_CLASSES
        row[c], row[(c + 1) % NUM_CLASSES] = correct, 10 - correct
        counts[name] = row
    texture = texture or {}
    return {"steps": 50, "guidance": guidance, "guidance_interval": [0.0, 0.5], "solver": "sde-dpmsolver++",
            "noise_spacing": "karras", "discriminator_guidance": 0.0, "macro_f1": correct / 10,
            "min_class_f1": correct / 10, "per_class_f1": {name: correct / 10 for name in CLASS_NAMES},
            "images_per_second": speed, "predicted_counts_per_class": counts,
            "coverage_per_class": {name: coverage for name in CLASS_NAMES}, "coverage_mean": coverage,
            "texture_error_per_class": {name: texture.get(name, 0.0) for name in CLASS_NAMES},
            "texture_error_worst": max(texture.values(), default=0.0)}


def test_counts_are_summed_and_other_figures_averaged():
    first = [result(1.0, 10, 0.80, speed=4.0), result(2.0, 8, 0.70)]
    second = [result(1.0, 6, 0.90, speed=6.0), result(2.0, 8, 0.72)]
    for stored in (first[0], second[0]):  # pooling recomputes F1 from the counts; a sweep's own F1 is not averaged
        stored["macro_f1"] = stored["min_class_f1"] = 0.0
    pooled = pooled_results([first, second])
    assert [p["guidance"] for p in pooled] == [1.0, 2.0]
    assert pooled[0]["predicted_counts_per_class"]["Debris"][CLASS_NAMES.index("Debris")] == 16
    assert sum(pooled[0]["predicted_counts_per_class"]["Debris"]) == 20
    assert pooled[0]["coverage_per_class"]["Mucus"] == pytest.approx(0.85)
    assert pooled[0]["coverage_mean"] == pytest.approx(0.85) and pooled[0]["images_per_second"] == 5.0
    # F1 comes from every pooled tile, not from the mean of the sweeps' F1: 16 of 20 tiles right in every class,
    # the 4 wrong ones labelled as the next class, so each class's precision and recall are both 0.8.
    assert pooled[0]["macro_f1"] == pytest.approx(0.8) and pooled[0]["min_class_f1"] == pytest.approx(0.8)
    assert pooled[1]["macro_f1"] == pytest.approx(0.8)


def test_worst_texture_is_the_worst_of_the_pooled_means_not_the_mean_of_the_worsts():
    first = [result(1.0, 9, 0.8, texture={"Debris": 0.20, "Mucus": 0.0, "Background": 0.9})]
    second = [result(1.0, 9, 0.8, texture={"Debris": 0.0, "Mucus": 0.16})]
    pooled = pooled_results([first, second])[0]
    # Background is nearly flat, so its relative error is not among the tissue classes' worst.
    assert pooled["texture_error_worst"] == pytest.approx(0.10)
    assert pooled["texture_error_per_class"]["Background"] == pytest.approx(0.45)


def test_sweeps_of_different_settings_or_figures_are_refused():
    with pytest.raises(ValueError, match="different settings"):
        pooled_results([[result(1.0, 9, 0.8)], [result(1.5, 9, 0.8)]])
    fewer = result(1.0, 9, 0.8)
    del fewer["coverage_per_class"]
    with pytest.raises(ValueError, match="different figures"):
        pooled_results([[result(1.0, 9, 0.8)], [fewer]])
    with pytest.raises(ValueError, match="one setting twice"):
        pooled_results([[result(1.0, 9, 0.8), result(1.0, 8, 0.8)], [result(1.0, 9, 0.8), result(1.0, 8, 0.8)]])


def test_spread_is_the_deviation_between_sweeps_over_classes_and_settings():
    sweeps = [[result(1.0, 9, 0.80), result(2.0, 9, 0.70)], [result(1.0, 9, 0.90), result(2.0, 9, 0.70)]]
    spread = between_sweep_spread(sweeps)["coverage_per_class"]
    # Half the class-settings differ by 0.1 (variance 0.005), half not at all: pooled variance 0.0025.
    assert spread["sd"] == pytest.approx(0.05)
    assert spread["largest_sd"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert spread["pooled_standard_error"] == pytest.approx(0.05 / np.sqrt(2))
    assert "recall_per_class" not in between_sweep_spread(sweeps)
