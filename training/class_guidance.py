"""A guidance scale per class, chosen from a `tune_sampling` sweep over guidance.

Guidance trades a class's range of appearance for how recognisable its tiles are. Classes differ in how much
of that trade they need: some are recognised without guidance, others blur into their neighbours. Every class
is sampled from its own seeds, so each class's tiles at one guidance scale do not depend on the scales of the
other classes, and the per-class figures of a sweep combine into the figures of a per-class choice.

The rule narrows each class's scales down on that class's own figures, in the order of the sweep's rule:
(1) scales at which the classifier labels at least `min_class_f1` of the class's tiles as the class (all, if
none does); (2) near-copies within `near_copy_tolerance` of the class's fewest; (3) relative texture error
within `texture_tolerance` of the class's smallest (not for background, which is nearly flat); (4) k-NN
recall of train tiles within `recall_tolerance` of the class's highest; (5) k-NN coverage of train tiles
within `coverage_tolerance` of the class's highest; (6) Fréchet distance to train tiles at most
`frechet_tolerance` (a fraction) above the class's lowest; (7) agreement within `tolerance` of the class's
best; (8) the lowest scale. Scale 1.0 skips the unconditional pass and is the cheapest; every other scale costs the
same, so a measured speed between them is host noise, and the lower scale trades the least variety for
recognisability. A step whose tolerance is None is skipped. The distance is relative because its scale
differs from class to class; it comes after coverage because coverage is read per tile neighbourhood and the
distance over the whole class, so among scales that reach as much of train it keeps those whose tiles, taken
together, sit closest to it. Recall comes before coverage because the two can
part ways: stronger guidance can spread a class's tiles over more of the real tiles' neighbourhoods (coverage
up) while more real tiles fall outside every generated tile's neighbourhood (recall down). The choice
stands only if the combined confusion matrix keeps every class's F1 at `min_class_f1` or above; otherwise the
profile keeps one scale for every class.
"""

from __future__ import annotations

import numpy as np

from pathgen.data import CLASS_NAMES, TISSUE_CLASSES, resolve_class
from pathgen.metrics import classification_report

# Fractions such as 30/900 sit exactly on a tolerance's edge; float rounding must not decide which side.
ROUNDING = 1e-9
BACKGROUND = resolve_class("background").name  # nearly flat: a relative texture error there means little
SAME_SETTING = ("steps", "guidance_interval", "solver", "noise_spacing", "discriminator_guidance")


def agreement(result: dict, name: str) -> float:
    """Fraction of the class's tiles that the classifier labels as the class."""
    row = result["predicted_counts_per_class"][name]
    return row[CLASS_NAMES.index(name)] / max(sum(row), 1)


def narrowed(candidates: list[dict], figure, tolerance: float | None, lowest: bool) -> list[dict]:
    """The candidates within `tolerance` of the best value of `figure(result)`; all if the step is skipped."""
    if tolerance is None:
        return candidates
    values = [figure(r) for r in candidates]
    best = min(values) if lowest else max(values)
    return [r for r, v in zip(candidates, values, strict=True)
            if (v <= best + tolerance + ROUNDING if lowest else v >= best - tolerance - ROUNDING)]


def choose_for_class(results: list[dict], name: str, rule: dict) -> dict:
    """The result whose guidance the rule in the module docstring picks for class `name`."""
    candidates = [r for r in results if agreement(r, name) >= rule["min_class_f1"] - ROUNDING] or results
    candidates = narrowed(candidates, lambda r: r["near_copy_fraction_per_class"][name],
                          rule.get("near_copy_tolerance"), lowest=True)
    if name != BACKGROUND:
        candidates = narrowed(candidates, lambda r: r["texture_error_per_class"][name],
                              rule.get("texture_tolerance"), lowest=True)
    candidates = narrowed(candidates, lambda r: r["recall_per_class"][name],
                          rule.get("recall_tolerance"), lowest=False)
    candidates = narrowed(candidates, lambda r: r["coverage_per_class"][name],
                          rule.get("coverage_tolerance"), lowest=False)
    if rule.get("frechet_tolerance") is not None:
        # A distance from sqrtm can come out a hair below zero for near-identical sets; a negative margin would
        # drop every candidate, the lowest included.
        lowest = max(min(r["frechet_per_class"][name] for r in candidates), 0.0)
        candidates = narrowed(candidates, lambda r: r["frechet_per_class"][name],
                              lowest * rule["frechet_tolerance"], lowest=True)
    candidates = narrowed(candidates, lambda r: agreement(r, name), rule["tolerance"], lowest=False)
    return min(candidates, key=lambda r: r["guidance"])


def f1_from_counts(rows: dict[str, list[int]]) -> dict:
    """Macro-F1, the weakest class's F1 and every class's F1 of the tiles behind confusion rows (class name -> how
    each class's tiles were labelled)."""
    labels, predictions = [], []
    for c, name in enumerate(CLASS_NAMES):
        for predicted, count in enumerate(rows[name]):
            labels += [c] * count
            predictions += [predicted] * count
    report = classification_report(np.array(labels), np.array(predictions))
    per_class_f1 = {name: figures["f1"] for name, figures in report["per_class"].items()}
    return {"macro_f1": report["macro_f1"], "min_class_f1": min(per_class_f1.values()), "per_class_f1": per_class_f1}


def combined_figures(picks: dict[str, dict]) -> dict:
    """The sweep's figures for tiles of each class taken from that class's pick (class name -> result)."""
    figures = f1_from_counts({name: picks[name]["predicted_counts_per_class"][name] for name in CLASS_NAMES})
    for key, summary in (("near_copy_fraction_per_class", "near_copy_fraction"),
                         ("coverage_per_class", "coverage_mean")):
        if all(key in r for r in picks.values()):
            figures[summary] = float(np.mean([picks[name][key][name] for name in CLASS_NAMES]))
    if all("texture_error_per_class" in r for r in picks.values()):
        figures["texture_error_worst"] = max(picks[name]["texture_error_per_class"][name] for name in CLASS_NAMES
                                             if name != BACKGROUND)
    return figures


def choose_class_guidance(results: list[dict], chosen: dict, rule: dict) -> dict:
    """{"class_guidance": {class key: scale} (empty when the choice does not stand), figures of the choice}."""
    same = [r for r in results if all(r.get(k) == chosen.get(k) for k in SAME_SETTING)]
    picks = {name: choose_for_class(same, name, rule) for name in CLASS_NAMES}
    figures = combined_figures(picks)
    stands = figures["min_class_f1"] >= rule["min_class_f1"] - ROUNDING
    scales = {TISSUE_CLASSES[c].key: picks[name]["guidance"] for c, name in enumerate(CLASS_NAMES)}
    # Classes at the profile's own scale need no entry; an empty map keeps the profile as it was.
    class_guidance = {key: scale for key, scale in scales.items() if scale != chosen["guidance"]} if stands else {}
    return {"class_guidance": class_guidance, "stands": stands, "picked": scales, **figures}

