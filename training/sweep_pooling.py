"""Pool `tune_sampling` sweeps of the same settings at different seeds into one set of figures per setting.

One sweep of 160 tiles a class measures each class's figures with a seed-to-seed spread as large as the
differences between guidance scales that the per-class rule sorts on. Pooling sweeps narrows it without a
longer single run. For each setting: the classifier's confusion counts are summed, so agreement and F1 are those
of every pooled tile; every other per-class figure (near-copies, texture, precision, recall, coverage, Fréchet
distance) is the mean over the sweeps, each of which measured the same number of tiles; the summary figures
(macro-F1, weakest class, near-copy fraction, mean coverage, worst texture error) are recomputed from those.
"""

from __future__ import annotations

import numpy as np

from pathgen.data import CLASS_NAMES
from training.class_guidance import BACKGROUND, SAME_SETTING, f1_from_counts

SETTING_KEYS = ("guidance", *SAME_SETTING)
COUNTS = "predicted_counts_per_class"
# Per-class figures whose spread between sweeps is worth printing: the ones the per-class rule reads.
SPREAD_FIGURES = ("coverage_per_class", "recall_per_class", "frechet_per_class", "near_copy_fraction_per_class",
                  "texture_error_per_class")
RELATIVE_SPREAD = ("frechet_per_class",)  # its scale differs from class to class, as the rule's tolerance does


def setting_key(result: dict) -> tuple:
    return tuple(tuple(v) if isinstance(v, list) else v for v in (result.get(k) for k in SETTING_KEYS))


def matched_settings(sweeps: list[list[dict]]) -> list[list[dict]]:
    """For each setting of the first sweep, its result in every sweep; ValueError unless the sweeps measured the
    same settings with the same figures."""
    keyed = [{setting_key(r): r for r in results} for results in sweeps]
    if any(len(k) != len(results) for k, results in zip(keyed, sweeps, strict=True)):
        raise ValueError("a sweep measures one setting twice")
    if any(k.keys() != keyed[0].keys() for k in keyed[1:]):
        raise ValueError("the sweeps measured different settings")
    groups = [[k[key] for k in keyed] for key in keyed[0]]
    if any(set(r) != set(group[0]) for group in groups for r in group[1:]):
        raise ValueError("the sweeps measured different figures (flags such as --coverage or --frechet differ)")
    return groups


def pooled_setting(group: list[dict]) -> dict:
    """One setting's figures over the sweeps in `group` (the module docstring's rules)."""
    first = group[0]
    pooled = {k: first[k] for k in SETTING_KEYS if k in first}
    for key, value in first.items():
        if key in pooled or key == "per_class_f1":  # F1 is recomputed from the summed counts below
            continue
        if key == COUNTS:
            pooled[key] = {name: np.sum([r[key][name] for r in group], axis=0).astype(int).tolist() for name in value}
        elif isinstance(value, dict):
            pooled[key] = {name: float(np.mean([r[key][name] for r in group])) for name in value}
        elif isinstance(value, int | float):
            pooled[key] = float(np.mean([r[key] for r in group]))
    pooled |= f1_from_counts(pooled[COUNTS])
    if "texture_error_per_class" in pooled:
        pooled["texture_error_worst"] = max(error for name, error in pooled["texture_error_per_class"].items()
                                            if name != BACKGROUND)
    return pooled


def pooled_results(sweeps: list[list[dict]]) -> list[dict]:
    """Every setting's figures pooled over `sweeps` (each a sweep's "results" list), in the first sweep's order."""
    return [pooled_setting(group) for group in matched_settings(sweeps)]


def between_sweep_spread(sweeps: list[list[dict]]) -> dict[str, dict[str, float]]:
    """For each per-class figure the rule reads: its standard deviation between sweeps, pooled over every class and
    setting (the root mean square of each class and setting's own; relative to its mean for the Fréchet distance),
    the largest single one, and the standard error of a pooled mean (the deviation / sqrt(number of sweeps))."""
    groups = matched_settings(sweeps)
    spread = {}
    for figure in SPREAD_FIGURES:
        if figure not in groups[0][0]:
            continue
        variances = []
        for group in groups:
            for name in CLASS_NAMES:
                values = np.array([r[figure][name] for r in group], dtype=float)
                scale = max(abs(values.mean()), 1e-12) if figure in RELATIVE_SPREAD else 1.0
                variances.append((values / scale).var(ddof=1))
        deviation = float(np.sqrt(np.mean(variances)))
        spread[figure] = {"sd": deviation, "largest_sd": float(np.sqrt(np.max(variances))),
                          "pooled_standard_error": deviation / np.sqrt(len(sweeps)),
                          "relative": figure in RELATIVE_SPREAD}
    return spread
