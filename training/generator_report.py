"""Print the realism report that `evaluate_generator` wrote as markdown tables, each target checked.

    python -m training.generator_report assets/metrics/generator.json
    python -m training.generator_report --compare SHIPPED.json CANDIDATE.json [SHIPPED.json CANDIDATE.json ...]
        [--coverage-margin 0.005] [--keep-met-targets | --keep-met-targets-over-seeds]
    python -m training.generator_report --tissue background --across A.json B.json ...
    python -m training.generator_report --targets-across SEED0.json SEED7.json ...

The README's generator tables are this script's output: every figure is read from the JSON, and every
"met"/"missed" is computed here from the issue's targets, so neither can drift from the measurement.
`--compare` applies the shipping rule of docs/generator_training.md to two evaluations run with the same
settings and seed (or to several such pairs at different seeds), and prints each rule with both figures and
whether the candidate ships. `--across` lines up one class over many evaluations (one row each), so candidates
measured at the same seed can be read side by side. `--targets-across` says at how many seeds one generator
meets each target, since a figure near its bar is met at some seeds and missed at others.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from pathgen.data import TISSUE_CLASSES, resolve_class
from pathgen.generation import describe_guidance

SETS = ("generated", "unguided", "bank")
TARGET_SPACE = "judge"  # targets are read in the independent judge's features; the filter's stand beside them


@dataclass(frozen=True)
class Targets:
    coverage: float = 0.85  # every class, unfiltered tiles
    recall: float = 0.80
    precision: float = 0.90
    frechet_ratio_overall: float = 5.0
    frechet_ratio_per_class: float = 10.0
    unguided_macro_f1: float = 0.93
    texture_relative: float = 0.10  # median within 10% of real ...
    texture_background_levels: float = 1.0  # ... background within 1 grey level
    near_copies: float = 0.01
    macro_f1: float = 0.95
    class_f1: float = 0.85


@dataclass(frozen=True)
class ShippingRule:
    """How far a candidate may fall behind the shipped weights and still replace them."""

    near_copy_margin: float = 0.005  # fraction of unfiltered tiles
    texture_mean_margin: float = 0.02  # mean relative texture error over the tissue classes
    # relative texture error of any one tissue class, or the shipped weights' worst at the same seed if larger
    texture_class_limit: float = 0.15
    background_levels: float = 1.0
    coverage_margin: float = 0.0  # rule 2: how far below the shipped mean coverage the candidate may be


# The two evaluations must differ only in the generator they measured; its profile's steps and guidance belong
# to the generator, so they may differ.
COMPARED_SETTINGS = ("per_class", "fd_size", "fd_dims", "validated_per_class", "threshold", "max_attempts",
                     "near_copy_percentile", "profile", "seed", "classifier", "judge")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", nargs="?", default="assets/metrics/generator.json",
                        help="generator.json written by training.evaluate_generator.")
    parser.add_argument("--compare", nargs="+", metavar="SHIPPED CANDIDATE",
                        help="Apply the shipping rule to pairs of generator.json files (shipped, then candidate; "
                             "each pair from the same settings and seed, each further pair at another seed) instead "
                             "of printing one report.")
    parser.add_argument("--coverage-margin", type=float, default=0.0,
                        help="How far the candidate's mean coverage (averaged over the pairs' seeds) may fall below "
                             "the shipped weights' and rule 2 still hold.")
    parser.add_argument("--keep-met-targets", action="store_true",
                        help="Add rule 5: no issue target met by a shipped evaluation may be missed by its candidate.")
    parser.add_argument("--keep-met-targets-over-seeds", action="store_true",
                        help="Add rule 5 read over the pairs' seeds together: every issue target the shipped weights "
                             "meet at n of the seeds must be met by the candidate at n or more of them.")
    parser.add_argument("--across", nargs="+", metavar="METRICS",
                        help="Print one row per generator.json for the class named by --tissue instead of one report.")
    parser.add_argument("--tissue", help="Class for --across: key, index or display name, e.g. background.")
    parser.add_argument("--targets-across", nargs="+", metavar="METRICS",
                        help="Print, for each issue target, at which of these generator.json files (one generator "
                             "at several seeds) it is met, instead of one report.")
    return parser.parse_args(argv)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def texture_ok(real: float, generated: float, key: str, targets: Targets) -> bool:
    if key == "background":
        return abs(generated - real) <= targets.texture_background_levels
    return abs(generated - real) <= targets.texture_relative * real


def target_space(metrics: dict) -> str:
    """The judge's features where the JSON has them, else the classifier's."""
    return TARGET_SPACE if TARGET_SPACE in metrics["feature_spaces"] else "classifier"


def target_rows(metrics: dict, targets: Targets = Targets()) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target that the JSON holds the figures for."""
    spaces, rows, space = metrics["feature_spaces"], [], target_space(metrics)
    prdc = spaces[space]["generated"]["prdc"]
    for figure, floor in (("coverage", targets.coverage), ("recall", targets.recall),
                          ("precision", targets.precision)):
        summary = prdc["summary"][figure]  # training.realism.summarise: lowest and mean over the classes
        lowest = min(prdc["per_class"], key=lambda key: prdc["per_class"][key][figure])
        rows.append((f"{figure} ≥ {floor} in every class ({space} features, unfiltered)",
                     f"lowest {summary['min']:.2f} ({lowest}); mean {summary['mean']:.2f}", summary["min"] >= floor))
    frechet = spaces[space]["generated"]["frechet"]
    overall = frechet["overall"]["ratio"]
    worst = max(frechet["per_class"], key=lambda k: frechet["per_class"][k]["ratio"] or 0)
    worst_ratio = frechet["per_class"][worst]["ratio"]
    rows.append((f"Fréchet ratio ≤ {targets.frechet_ratio_overall:g} overall, ≤ {targets.frechet_ratio_per_class:g} "
                 f"per class ({space} features, {frechet['overall']['images_per_set']} tiles a set)",
                 f"overall {overall:.1f}; worst class {worst_ratio:.1f} ({worst})",
                 overall <= targets.frechet_ratio_overall and worst_ratio <= targets.frechet_ratio_per_class))
    unguided = spaces["classifier"]["recognisability"]["unguided"]["macro_f1"]
    rows.append((f"unguided (guidance 1.0) classifier macro-F1 ≥ {targets.unguided_macro_f1}", f"{unguided:.3f}",
                 unguided >= targets.unguided_macro_f1))
    texture = metrics["texture"]["per_class"]
    close = [k for k, v in texture.items() if texture_ok(v["real"]["median"], v["generated"]["median"], k, targets)]
    rows.append((f"texture median within {targets.texture_relative:.0%} of real in every class (background: "
                 f"{targets.texture_background_levels:g} grey level)",
                 f"{len(close)} of {len(texture)} classes", len(close) == len(texture)))
    memorised = metrics["memorisation"]
    fraction = memorised["generated"]["near_copy_fraction"]
    rows.append((f"near-copies ≤ {targets.near_copies:.0%} of unfiltered tiles", f"{fraction:.1%}",
                 fraction <= targets.near_copies))
    if "bank" in memorised:
        in_bank = memorised["bank"]["near_copy_fraction"]
        rows.append(("no near-copies in the bank", f"{in_bank:.1%} of {memorised['bank']['images']}", in_bank == 0))
    recognised = metrics["recognisability"]
    low = min(recognised["per_class"], key=lambda k: recognised["per_class"][k]["f1"])
    rows.append((f"unfiltered macro-F1 ≥ {targets.macro_f1}, no class < {targets.class_f1} (classifier)",
                 f"{recognised['macro_f1']:.3f}; lowest {recognised['per_class'][low]['f1']:.3f} ({low})",
                 recognised["macro_f1"] >= targets.macro_f1 and recognised["per_class"][low]["f1"] >= targets.class_f1))
    return rows


def targets_table(metrics: dict) -> str:
    lines = ["| target | measured | |", "| --- | --- | --- |"]
    lines += [f"| {target} | {measured} | {verdict(ok)} |" for target, measured, ok in target_rows(metrics)]
    return "\n".join(lines)


def prdc_table(metrics: dict, space: str) -> str:
    """Per class: precision / recall / coverage of each set beside real vs real, and the Fréchet ratio."""
    spaces = metrics["feature_spaces"]
    names = [n for n in SETS if spaces[space].get(n, {}).get("prdc", {}).get("per_class")]
    header = "| class | real vs real P / R / C | " + " | ".join(f"{n} P / R / C | {n} FD ratio" for n in names) + " |"
    lines = [header, "| --- " * (2 + 2 * len(names)) + "|"]
    for tissue in TISSUE_CLASSES:
        first = spaces[space][names[0]]["prdc"]["per_class"].get(tissue.key)
        if first is None:
            continue
        real = first["real_vs_real"]
        cells = [tissue.key, f"{real['precision']:.2f} / {real['recall']:.2f} / {real['coverage']:.2f}"]
        for name in names:
            knn = spaces[space][name]["prdc"]["per_class"].get(tissue.key)
            ratio = spaces[space][name]["frechet"]["per_class"].get(tissue.key, {}).get("ratio")
            cells.append("–" if knn is None else
                         f"{knn['precision']:.2f} / {knn['recall']:.2f} / {knn['coverage']:.2f}")
            cells.append("–" if ratio is None else f"{ratio:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    overall = ["**overall**", ""] + [cell for n in names for cell in
                                     ("", f"{spaces[space][n]['frechet']['overall']['ratio']:.1f}")]
    lines.append("| " + " | ".join(overall) + " |")
    return "\n".join(lines)


def texture_table(metrics: dict) -> str:
    texture = metrics["texture"]["per_class"]
    names = [n for n in SETS if all(texture[k].get(n) for k in texture)]
    lines = ["| class | real | " + " | ".join(names) + " |", "| --- " * (2 + len(names)) + "|"]
    for key, groups in texture.items():
        lines.append(f"| {key} | {groups['real']['median']:.1f} | "
                     + " | ".join(f"{groups[n]['median']:.1f}" for n in names) + " |")
    return "\n".join(lines)


def report(metrics: dict) -> str:
    generator, sampling = metrics["generator"], metrics["generator"]["sampling"]
    spaces = [s for s in ("judge", "classifier") if s in metrics["feature_spaces"]]
    guidance = describe_guidance(sampling["guidance"], sampling.get("class_guidance"))
    parts = [f"Generator {generator['path']} at profile `{generator['profile']}` ({sampling['steps']} steps, "
             f"{sampling['solver']}, guidance {guidance}); command: `{metrics['reproduce']}`",
             "", targets_table(metrics)]
    for space in spaces:
        parts += ["", f"k-NN precision / recall / coverage (k = {metrics['feature_spaces']['prdc_k']}) and Fréchet "
                      f"ratio per class, {space} features:", "", prdc_table(metrics, space)]
    parts += ["", "Texture, median grey-level step between neighbouring pixels (0–255):", "", texture_table(metrics)]
    return "\n".join(parts)


def texture_errors(metrics: dict) -> tuple[dict[str, float], float]:
    """Relative error of the median texture per tissue class, and background's error in grey levels."""
    texture = metrics["texture"]["per_class"]
    relative = {key: abs(groups["generated"]["median"] - groups["real"]["median"]) / groups["real"]["median"]
                for key, groups in texture.items() if key != "background"}
    background = texture["background"]
    return relative, abs(background["generated"]["median"] - background["real"]["median"])


def rule_figures(metrics: dict) -> dict[str, float]:
    recognised = metrics["recognisability"]
    relative, background = texture_errors(metrics)
    space = target_space(metrics)
    return {"macro_f1": recognised["macro_f1"],
            "lowest_f1": min(figures["f1"] for figures in recognised["per_class"].values()),
            "coverage": metrics["feature_spaces"][space]["generated"]["prdc"]["summary"]["coverage"]["mean"],
            "near_copies": metrics["memorisation"]["generated"]["near_copy_fraction"],
            "texture_mean": sum(relative.values()) / len(relative), "texture_worst": max(relative.values()),
            "background": background}


def shipping_rows(shipped: dict, candidate: dict, rule: ShippingRule = ShippingRule(),
                  targets: Targets = Targets()) -> list[tuple[str, str, str, bool]]:
    """(rule, shipped figure, candidate figure, holds) for the four rules of docs/generator_training.md."""
    old, new = rule_figures(shipped), rule_figures(candidate)
    margin = f" − {rule.coverage_margin:g}" if rule.coverage_margin else ""
    return [
        (f"1. unfiltered macro-F1 ≥ {targets.macro_f1}, no class < {targets.class_f1} (classifier)",
         f"{old['macro_f1']:.3f}; lowest {old['lowest_f1']:.3f}", f"{new['macro_f1']:.3f}; lowest {new['lowest_f1']:.3f}",
         new["macro_f1"] >= targets.macro_f1 and new["lowest_f1"] >= targets.class_f1),
        (f"2. mean coverage ({target_space(candidate)} features) at least the shipped weights'{margin}",
         f"{old['coverage']:.3f}", f"{new['coverage']:.3f}",
         new["coverage"] >= old["coverage"] - rule.coverage_margin),
        (f"3. near-copies ≤ shipped + {rule.near_copy_margin:.1%}", f"{old['near_copies']:.2%}",
         f"{new['near_copies']:.2%}", new["near_copies"] <= old["near_copies"] + rule.near_copy_margin),
        (f"4a. mean texture error over tissue classes ≤ shipped + {rule.texture_mean_margin:.0%}",
         f"{old['texture_mean']:.1%}", f"{new['texture_mean']:.1%}",
         new["texture_mean"] <= old["texture_mean"] + rule.texture_mean_margin),
        (f"4b. no tissue class's texture off by more than {rule.texture_class_limit:.0%} "
         "or the shipped weights' worst class",
         f"worst {old['texture_worst']:.1%}", f"worst {new['texture_worst']:.1%}",
         new["texture_worst"] <= max(rule.texture_class_limit, old["texture_worst"])),
        (f"4c. background texture within {rule.background_levels:g} grey level, or no further off than shipped",
         f"{old['background']:.2f}", f"{new['background']:.2f}",
         new["background"] <= max(rule.background_levels, old["background"])),
    ]


def kept_targets_row(shipped: dict, candidate: dict, targets: Targets = Targets()) -> tuple[str, str, str, bool]:
    """The rule that no issue target met by the shipped evaluation is missed by the candidate's."""
    met_before = [name for name, _, ok in target_rows(shipped, targets) if ok]
    lost = [name for name, _, ok in target_rows(candidate, targets) if name in met_before and not ok]
    return ("5. every issue target the shipped weights meet, met by the candidate", f"{len(met_before)} met",
            "all kept" if not lost else "missed: " + "; ".join(lost), not lost)


def met_at_seeds(evaluations: list[dict], targets: Targets = Targets()) -> dict[str, list[str]]:
    """For each issue target, the seeds of the evaluations that meet it."""
    met: dict[str, list[str]] = {}
    for metrics in evaluations:
        for name, _, ok in target_rows(metrics, targets):
            met.setdefault(name, []).extend([str(metrics["settings"]["seed"])] if ok else [])
    return met


def kept_targets_over_seeds(pairs: list[tuple[dict, dict]],
                            targets: Targets = Targets()) -> tuple[str, list[str], bool, list[str]]:
    """Rule 5 over the seeds together: (rule, a cell per evaluation, holds, one line per target met anywhere).

    One seed's reading of a target near its bar flips with the seed, so a target the shipped weights meet at n
    seeds is kept when the candidate meets it at n or more of the same seeds.
    """
    met = [met_at_seeds([pair[side] for pair in pairs], targets) for side in (0, 1)]
    shipped, candidate = ({name: len(hits) for name, hits in side.items()} for side in met)
    # check_comparable gives each pair its own seed, so a side's targets met at one seed are counted by that seed.
    cells = [f"{sum(str(pair[0]['settings']['seed']) in hits for hits in side.values())} met"
             for pair in pairs for side in met]
    fewer = [name for name, count in shipped.items() if candidate.get(name, 0) < count]
    lines = [f"{name}: shipped {count}, candidate {candidate.get(name, 0)} of {len(pairs)}"
             + (" (fewer)" if name in fewer else "")
             for name, count in shipped.items() if count or candidate.get(name, 0)]
    return ("5. every issue target met by the shipped weights at n seeds, met by the candidate at n or more",
            cells, not fewer, lines)


def check_comparable(pairs: list[tuple[dict, dict]]) -> None:
    """Each pair differs only in the generator; pairs differ only in the seed, and each side in no weights."""
    for shipped, candidate in pairs:
        differing = [key for key in COMPARED_SETTINGS
                     if shipped["settings"].get(key) != candidate["settings"].get(key)]
        if differing:
            raise SystemExit(f"the two evaluations differ in {', '.join(differing)}; rerun python -m "
                             "training.evaluate_generator for both with the same flags and seed")
    seeds = [shipped["settings"]["seed"] for shipped, _ in pairs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"two pairs share a seed ({seeds}); each pair of evaluations needs its own --seed")
    first = pairs[0][0]["settings"]
    differing = sorted({key for shipped, _ in pairs for key in COMPARED_SETTINGS
                        if key != "seed" and shipped["settings"].get(key) != first.get(key)})
    if differing:
        raise SystemExit(f"the pairs differ in {', '.join(differing)}; only --seed may change between them")
    for side, name in ((0, "shipped"), (1, "candidate")):
        if len({json.dumps(measured_generator(pair[side]), sort_keys=True) for pair in pairs}) > 1:
            raise SystemExit(f"the {name} evaluations measured different weights or sampling; compare one "
                             "generator a side")


def measured_generator(metrics: dict) -> dict:
    """What a side's figures depend on: the UNet's files and the profile sampled (not the rest of its config)."""
    generator = metrics["generator"]
    weights = {path: digest for path, digest in generator.get("sha256", {}).items() if path.startswith("unet/")}
    # An option that is off may be recorded as 0 or left out (older JSONs), and means the same either way.
    sampling = {key: value for key, value in (generator.get("sampling") or {}).items() if value}
    return {"weights": weights or generator["path"], "sampling": sampling}


def compare(pairs: list[tuple[dict, dict]], rule: ShippingRule = ShippingRule(),
            keep_met_targets: bool = False, keep_met_targets_over_seeds: bool = False) -> str:
    """The shipping rules over one or more (shipped, candidate) pairs of evaluations, one seed a pair.

    Rules 1, 3, 4 (and 5 with keep_met_targets) must hold at every seed; rule 2 reads the mean coverage averaged
    over the seeds, since one seed's coverage moves by more than the rule can tell apart. With
    keep_met_targets_over_seeds rule 5 counts, per target, the seeds at which each side meets it.
    """
    if keep_met_targets and keep_met_targets_over_seeds:
        raise SystemExit("choose one reading of rule 5: --keep-met-targets or --keep-met-targets-over-seeds")
    check_comparable(pairs)
    per_pair = [shipping_rows(shipped, candidate, rule) + ([kept_targets_row(shipped, candidate)]
                                                          if keep_met_targets else []) for shipped, candidate in pairs]
    coverage = [sum(rule_figures(pair[side])["coverage"] for pair in pairs) / len(pairs) for side in (0, 1)]
    coverage_holds = coverage[1] >= coverage[0] - rule.coverage_margin
    rows = []
    for index, name in enumerate(row[0] for row in per_pair[0]):
        cells = [cell for rows_of_pair in per_pair for cell in rows_of_pair[index][1:3]]
        holds = coverage_holds if name.startswith("2.") else all(rows_of_pair[index][3] for rows_of_pair in per_pair)
        rows.append((name, cells, holds))
    counted = []
    if keep_met_targets_over_seeds:
        name, cells, holds, counted = kept_targets_over_seeds(pairs)
        rows.append((name, cells, holds))
    seeds = [str(shipped["settings"]["seed"]) for shipped, _ in pairs]
    # One side's weights may have been measured from different folders (a gate's worktree, a run's export).
    folders = [", ".join(dict.fromkeys(pair[side]["generator"]["path"] for pair in pairs)) for side in (0, 1)]
    lines = [f"Shipped {folders[0]} against candidate {folders[1]}, profile `{pairs[0][1]['settings']['profile']}`, "
             f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}:", ""]
    heads = ["shipped", "candidate"] if len(pairs) == 1 else [f"{side}, seed {seed}" for seed in seeds
                                                             for side in ("shipped", "candidate")]
    lines += ["| rule | " + " | ".join(heads) + " | holds |", "| --- |" + " --- |" * (len(heads) + 1)]
    lines += [f"| {name} | {' | '.join(cells)} | {'yes' if ok else '**no**'} |" for name, cells, ok in rows]
    if len(pairs) > 1 or rule.coverage_margin:
        lines += ["", f"Rule 2 on the mean over seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: shipped "
                  f"{coverage[0]:.5f}, candidate {coverage[1]:.5f}, threshold {coverage[0] - rule.coverage_margin:.5f}."]
    if counted:
        lines += ["", f"Rule 5, seeds at which each target is met (of {', '.join(seeds)}):", ""]
        lines += [f"- {line}" for line in counted]
    ships = all(ok for *_, ok in rows)
    lines += ["", "The candidate **ships**." if ships else "The candidate **does not ship**."]
    return "\n".join(lines)


def class_across(named: list[tuple[str, dict]], tissue: str) -> str:
    """One row per evaluation: seed, tiles a set, and the class's unfiltered P / R / C in each feature space."""
    try:
        tissue = resolve_class(tissue).key
    except ValueError as error:
        raise SystemExit(f"--tissue: {error}") from None
    lines = [f"{tissue}, unfiltered tiles, k-NN precision / recall / coverage:", "",
             "| evaluation | seed | tiles a set | judge P / R / C | classifier P / R / C |", "| --- " * 5 + "|"]
    for name, metrics in named:
        figures = [metrics["feature_spaces"].get(space, {}).get("generated", {}).get("prdc", {}).get(
            "per_class", {}).get(tissue) for space in ("judge", "classifier")]
        sizes = [knn["images_per_set"] for knn in figures if knn is not None]
        cells = [name, str(metrics["settings"]["seed"]), str(sizes[0]) if sizes else "–"]
        cells += ["–" if knn is None else f"{knn['precision']:.3f} / {knn['recall']:.3f} / {knn['coverage']:.3f}"
                  for knn in figures]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_across(named: list[tuple[str, dict]]) -> str:
    """For each issue target, the seeds of the evaluations that meet it, of all those given."""
    met = met_at_seeds([metrics for _, metrics in named])
    seeds = ", ".join(str(metrics["settings"]["seed"]) for _, metrics in named)
    lines = [f"Issue targets over {len(named)} evaluations (seeds {seeds}):", "",
             "| target | met at | seeds met |", "| --- | --- | --- |"]
    lines += [f"| {name} | {len(hits)} of {len(named)} | {', '.join(hits) or '–'} |" for name, hits in met.items()]
    return "\n".join(lines)


def read_metrics(path: Path) -> dict:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"cannot read {path} ({error}); write it with python -m training.evaluate_generator") from None
    if "feature_spaces" not in metrics:
        raise SystemExit(f"{path} predates the realism sections; rerun python -m training.evaluate_generator")
    return metrics


def main(args: argparse.Namespace) -> str:
    if args.compare:
        if len(args.compare) % 2:
            raise SystemExit("--compare takes pairs: SHIPPED.json CANDIDATE.json [SHIPPED.json CANDIDATE.json ...]")
        if not 0 <= args.coverage_margin < 1:
            raise SystemExit(f"--coverage-margin must be in [0, 1), got {args.coverage_margin}")
        metrics = [read_metrics(Path(path)) for path in args.compare]
        pairs = list(zip(metrics[::2], metrics[1::2], strict=True))
        text = compare(pairs, ShippingRule(coverage_margin=args.coverage_margin), args.keep_met_targets,
                       args.keep_met_targets_over_seeds)
    elif args.across:
        if args.tissue is None:
            raise SystemExit("--across needs --tissue CLASS, e.g. --tissue background")
        text = class_across([(path, read_metrics(Path(path))) for path in args.across], args.tissue)
    elif args.targets_across:
        text = targets_across([(path, read_metrics(Path(path))) for path in args.targets_across])
    else:
        text = report(read_metrics(Path(args.metrics)))
    print(text)
    return text


if __name__ == "__main__":
    main(parse_args())
