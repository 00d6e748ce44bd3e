import json

import numpy as np
import pytest
import torch

from pathgen.data import CLASS_NAMES
from pathgen.generation import load_generator
from pathgen.metrics import texture_energy
from tests.conftest import save_tiny_models
from training import tune_sampling


def setting(steps: int, macro_f1: float, speed: float, weakest: float = 0.9, near: float | None = None) -> dict:
    result = {"steps": steps, "macro_f1": macro_f1, "min_class_f1": weakest, "images_per_second": speed}
    return result if near is None else result | {"near_copy_fraction": near}


def test_choice_is_the_fastest_setting_within_tolerance_of_the_best():
    results = [setting(12, 0.90, 10.0), setting(10, 0.895, 12.0), setting(6, 0.80, 20.0)]
    assert tune_sampling.choose(results, tolerance=0.01)["steps"] == 10
    assert tune_sampling.choose(results, tolerance=0.0)["steps"] == 12
    assert tune_sampling.choose(results, tolerance=0.2)["steps"] == 6


def test_choice_skips_settings_below_the_class_floor_unless_none_reaches_it():
    results = [setting(12, 0.95, 10.0, weakest=0.86), setting(10, 0.96, 12.0, weakest=0.84)]
    assert tune_sampling.choose(results, tolerance=0.01, min_class_f1=0.85)["steps"] == 12
    assert tune_sampling.choose(results, tolerance=0.01, min_class_f1=0.0)["steps"] == 10
    assert tune_sampling.choose(results, tolerance=0.01, min_class_f1=0.99)["steps"] == 10  # none reaches it


def test_choice_with_near_copies_never_trades_variety_for_speed():
    results = [setting(12, 0.97, 10.0, near=0.02), setting(10, 0.97, 12.0, near=0.10),
               setting(8, 0.95, 15.0, near=0.025), setting(6, 0.90, 30.0, weakest=0.5, near=0.0)]
    # Without the guard the 10-step setting wins on speed; with it, only settings within 0.01 of the fewest
    # near-copies among those above the floor (0.02) remain, and of those the best macro-F1 within tolerance.
    assert tune_sampling.choose(results, tolerance=0.01, min_class_f1=0.85)["steps"] == 10
    assert tune_sampling.choose(results, tolerance=0.01, min_class_f1=0.85, near_copy_tolerance=0.01)["steps"] == 12
    assert tune_sampling.choose(results, tolerance=0.05, min_class_f1=0.85, near_copy_tolerance=0.01)["steps"] == 8


def test_choice_with_texture_keeps_the_settings_closest_to_real_texture():
    results = [setting(50, 0.99, 5.0, near=0.01) | {"texture_error_worst": 0.18},
               setting(50, 0.97, 5.0, near=0.01) | {"texture_error_worst": 0.06},
               setting(25, 0.975, 9.0, near=0.01) | {"texture_error_worst": 0.08},
               setting(50, 0.96, 5.0, near=0.05) | {"texture_error_worst": 0.01}]
    # Without the texture step the sharpest-F1 setting wins although its texture is 18% off; with it only settings
    # within 0.03 of the smallest error among those that passed the near-copy step (0.06) remain, the fastest wins.
    assert tune_sampling.choose(results, 0.01, 0.85, 0.01)["macro_f1"] == 0.99
    assert tune_sampling.choose(results, 0.01, 0.85, 0.01, texture_tolerance=0.03)["steps"] == 25
    assert tune_sampling.choose(results, 0.0, 0.85, 0.01, texture_tolerance=0.0)["macro_f1"] == 0.97


def test_choice_with_coverage_keeps_the_settings_that_cover_most_of_train():
    results = [setting(50, 0.99, 5.0, near=0.01) | {"texture_error_worst": 0.05, "coverage_mean": 0.70},
               setting(50, 0.97, 5.0, near=0.01) | {"texture_error_worst": 0.05, "coverage_mean": 0.88},
               setting(25, 0.975, 9.0, near=0.01) | {"texture_error_worst": 0.06, "coverage_mean": 0.86},
               setting(50, 0.96, 5.0, near=0.01) | {"texture_error_worst": 0.30, "coverage_mean": 0.95}]
    # The texture step drops the last setting before coverage is read, so 0.88 is the highest that counts; of the
    # two within 0.03 of it the F1 step keeps both at tolerance 0.01 and the faster wins.
    assert tune_sampling.choose(results, 0.01, 0.85, 0.01, 0.03)["macro_f1"] == 0.99
    assert tune_sampling.choose(results, 0.01, 0.85, 0.01, 0.03, coverage_tolerance=0.03)["steps"] == 25
    assert tune_sampling.choose(results, 0.01, 0.85, 0.01, 0.03, coverage_tolerance=0.0)["macro_f1"] == 0.97


def test_coverage_figures_read_each_class_against_its_own_reference():
    rng = np.random.default_rng(0)
    reference = [rng.normal(c, 0.1, (20, 4)).astype(np.float32) for c in range(9)]
    labels = np.repeat(np.arange(9), 20)
    same = tune_sampling.coverage_figures(np.concatenate(reference), labels, reference)
    assert same["coverage_mean"] == pytest.approx(1.0)
    shifted = tune_sampling.coverage_figures(np.concatenate(reference) + 5.0, labels, reference)
    assert shifted["coverage_mean"] == pytest.approx(0.0) and set(shifted["coverage_per_class"]) == set(CLASS_NAMES)


def test_frechet_figures_read_each_class_against_its_own_reference():
    rng = np.random.default_rng(0)
    spread = np.array([3.0, 1.0, 1.0])  # the first axis is the principal one
    reference = [rng.normal(c, spread, (200, 3)) for c in range(9)]
    labels = np.repeat(np.arange(9), 200)
    near = tune_sampling.frechet_figures(np.concatenate([rng.normal(c, spread, (200, 3)) for c in range(9)]), labels,
                                         reference)["frechet_per_class"]
    # Class 2 shifted by 2 along every axis: its distance gains about 3 * 2**2; the others stay near zero.
    shifted = [rng.normal(c + (2.0 if c == 2 else 0.0), spread, (200, 3)) for c in range(9)]
    far = tune_sampling.frechet_figures(np.concatenate(shifted), labels, reference)["frechet_per_class"]
    assert set(far) == set(CLASS_NAMES) and max(near.values()) < 1.0
    assert far[CLASS_NAMES[2]] == pytest.approx(12.0, abs=2.0) and far[CLASS_NAMES[3]] < 1.0
    # On the reference's first principal axis only, the shift counts once, along that axis.
    one_axis = tune_sampling.frechet_figures(np.concatenate(shifted), labels, reference, dims=1)["frechet_per_class"]
    assert one_axis[CLASS_NAMES[2]] == pytest.approx(4.0, abs=1.0)


def test_texture_figures_compare_each_class_with_its_reference():
    rng = np.random.default_rng(0)
    flat = np.full((9 * 4, 28, 28, 3), 128, dtype=np.uint8)
    noisy = rng.integers(0, 256, flat.shape, dtype=np.uint8)
    labels = np.repeat(np.arange(9), 4)
    reference = np.array([np.median(texture_energy(noisy[labels == c])) for c in range(9)])
    same = tune_sampling.texture_figures(noisy, labels, reference)
    assert same["texture_error_worst"] == pytest.approx(0.0)
    smooth = tune_sampling.texture_figures(flat, labels, reference)
    assert smooth["texture_error_worst"] == pytest.approx(1.0)  # flat tiles have no texture at all
    assert set(smooth["texture_error_per_class"]) == set(CLASS_NAMES)


def test_a_setting_exactly_on_the_near_copy_tolerance_stays_in():
    # 13/900 + 0.01 falls just below 22/900 in floating point.
    results = [setting(12, 0.95, 10.0, near=13 / 900), setting(10, 0.95, 12.0, near=22 / 900)]
    assert 13 / 900 + 0.01 < 22 / 900
    assert tune_sampling.choose(results, tolerance=0.01, near_copy_tolerance=0.01)["steps"] == 10


def test_sweep_measures_every_setting_and_writes_the_choice_to_the_generator(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    args = tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"),
                                     "--steps", "1", "2", "--guidance", "1", "2.5", "--per-class", "3",
                                     "--guidance-intervals", "0:1", "0:.5", "--solvers", "dpmsolver++",
                                     "sde-dpmsolver++", "--near-copies", "--texture", "--coverage",
                                     "--data-dir", str(fixture_dir),
                                     "--batch-size", "2", "--output", str(tmp_path / "sweep.json"),
                                     "--write-defaults"])
    summary = tune_sampling.main(args)
    # Guidance 1.0 is unguided at every step, so it is measured at the first interval only.
    assert [(r["steps"], r["guidance"], r["guidance_interval"], r["solver"]) for r in summary["results"]] == [
        (steps, guidance, interval, solver) for steps in (1, 2) for guidance in (1.0, 2.5)
        for interval in (([0, 1],) if guidance == 1.0 else ([0, 1], [0, 0.5]))
        for solver in ("dpmsolver++", "sde-dpmsolver++")]
    for result in summary["results"]:
        assert 0.0 <= result["min_class_f1"] <= result["macro_f1"] <= 1.0 and result["images_per_second"] > 0
        assert 0.0 <= result["near_copy_fraction"] <= 1.0
        assert len(result["near_copy_fraction_per_class"]) == 9
        assert result["texture_error_worst"] >= 0 and len(result["texture_median_per_class"]) == 9
        assert 0.0 <= result["coverage_mean"] <= 1.0 and len(result["coverage_per_class"]) == 9
    recorded = json.loads((tmp_path / "sweep.json").read_text())
    assert recorded["chosen"] == summary["chosen"]
    command = recorded["command"].split()
    assert command[:3] == ["python", "-m", "training.tune_sampling"]
    assert tune_sampling.parse_args(command[3:]) == args
    defaults = load_generator(tmp_path / "gen").defaults
    assert (defaults.steps, defaults.guidance) == (summary["chosen"]["steps"], summary["chosen"]["guidance"])
    assert list(defaults.guidance_interval) == summary["chosen"]["guidance_interval"]
    assert defaults.solver == summary["chosen"]["solver"]
    assert summary["chosen"] == {key: tune_sampling.choose(summary["results"], 0.01, 0.85, 0.01, 0.03, 0.03)[key]
                                 for key in summary["chosen"]}


def test_class_guidance_choice_is_written_with_the_profile(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    args = tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"),
                                     "--profile", "bank", "--steps", "1", "--guidance", "1", "2.5", "--per-class", "3",
                                     "--coverage", "--class-guidance", "--min-class-f1", "0",
                                     "--data-dir", str(fixture_dir), "--batch-size", "3", "--write-defaults"])
    summary = tune_sampling.main(args)
    for result in summary["results"]:
        assert [sum(row) for row in result["predicted_counts_per_class"].values()] == [3] * 9
        assert set(result["recall_per_class"]) == set(CLASS_NAMES)
    choice = summary["per_class_choice"]
    assert choice["stands"] and set(choice["picked"].values()) <= {1.0, 2.5} and len(choice["picked"]) == 9
    bank = load_generator(tmp_path / "gen").profiles.bank
    assert bank.class_guidance == choice["class_guidance"] == summary["chosen"]["class_guidance"]
    assert [bank.guidance_for(c) for c in range(9)] == list(choice["picked"].values())
    # The same choice from the sweep's JSON, without measuring again.
    (tmp_path / "sweep.json").write_text(json.dumps(summary))
    again = tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json"), "--coverage",
                                                         "--class-guidance", "--min-class-f1", "0"]))
    assert again["chosen"] == summary["chosen"]
    assert again["results_from"] == [{"path": str(tmp_path / "sweep.json"), "command": summary["command"]}]
    # The choice belongs to the profile the sweep measured: written there without --profile, refused with another.
    live_before = load_generator(tmp_path / "gen").profiles.live
    tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json"), "--coverage",
                                                 "--class-guidance", "--min-class-f1", "0", "--generator",
                                                 str(tmp_path / "gen"), "--write-defaults"]))
    rewritten = load_generator(tmp_path / "gen").profiles
    assert rewritten.live == live_before and rewritten.bank.class_guidance == choice["class_guidance"]
    assert "--profile bank" in again["command"]
    with pytest.raises(SystemExit, match="measured the 'bank' profile"):
        tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json"), "--coverage",
                                                     "--class-guidance", "--min-class-f1", "0", "--profile", "live"]))
    assert summary["rule"]["recall_tolerance"] is None
    with_recall = tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json"), "--coverage",
                                                               "--class-guidance", "--min-class-f1", "0",
                                                               "--recall-tolerance", "0.05"]))
    assert with_recall["rule"]["recall_tolerance"] == 0.05
    (tmp_path / "choice.json").write_text(json.dumps(with_recall))  # a choice made from a sweep keeps its profile
    from_choice = tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "choice.json"),
                                                               "--coverage", "--class-guidance", "--min-class-f1", "0"]))
    assert "--profile bank" in from_choice["command"] and from_choice["chosen"] == with_recall["chosen"]
    # Its recorded command names only the flags that choose, and repeats the choice.
    recorded = with_recall["command"].split()
    assert "--steps" not in recorded and "--per-class" not in recorded and "--recall-tolerance" in recorded
    repeated = tune_sampling.main(tune_sampling.parse_args(recorded[3:]))
    assert (repeated["chosen"], repeated["rule"]) == (with_recall["chosen"], with_recall["rule"])
    # Measured with --frechet, every class's distance to its train reference is in the sweep and the rule reads it.
    measured = tune_sampling.main(tune_sampling.parse_args(
        ["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"), "--profile", "bank", "--steps",
         "1", "--guidance", "1", "2.5", "--per-class", "3", "--coverage", "--frechet", "--frechet-reference", "4",
         "--class-guidance", "--frechet-tolerance", "0.1", "--min-class-f1", "0", "--data-dir", str(fixture_dir),
         "--batch-size", "3"]))
    assert all(set(r["frechet_per_class"]) == set(CLASS_NAMES) for r in measured["results"])
    assert measured["rule"]["frechet_tolerance"] == 0.1 and "--frechet-reference" in measured["command"].split()
    # Fréchet distances are measured only when asked for, and read by the rule only with a tolerance.
    assert "frechet_per_class" not in summary["results"][0] and summary["rule"]["frechet_tolerance"] is None
    with pytest.raises(SystemExit, match="no per-class Fréchet distance"):
        tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json"), "--coverage",
                                                     "--frechet", "--class-guidance", "--frechet-tolerance", "0.1"]))
    # A sweep from before recall was measured is refused with the flag that measures it, not a KeyError.
    for result in summary["results"]:
        del result["recall_per_class"]
    (tmp_path / "old.json").write_text(json.dumps(summary))
    with pytest.raises(SystemExit, match="no per-class recall"):
        tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "old.json"), "--coverage",
                                                     "--class-guidance", "--recall-tolerance", "0.05"]))


def test_noise_spacings_are_swept_and_the_chosen_one_is_written(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    args = tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"),
                                     "--profile", "bank", "--steps", "3", "--guidance", "1", "2",
                                     "--noise-spacings", "trailing", "karras", "--per-class", "2",
                                     "--data-dir", str(fixture_dir), "--batch-size", "2", "--write-defaults"])
    summary = tune_sampling.main(args)
    assert [(r["guidance"], r["noise_spacing"]) for r in summary["results"]] == [
        (1.0, "trailing"), (1.0, "karras"), (2.0, "trailing"), (2.0, "karras")]
    bank = load_generator(tmp_path / "gen").profiles.bank
    assert bank.noise_spacing == summary["chosen"]["noise_spacing"]
    assert tune_sampling.parse_args(summary["command"].split()[3:]).noise_spacings == ["trailing", "karras"]
    # Without the flag a sweep keeps the profile's own spacing, whatever an earlier setting used.
    kept = tune_sampling.main(tune_sampling.parse_args(["--generator", str(tmp_path / "gen"), "--classifier",
                                                        str(tmp_path / "clf"), "--profile", "live", "--steps", "2",
                                                        "--guidance", "1", "--per-class", "1"]))
    assert [r["noise_spacing"] for r in kept["results"]] == [load_generator(tmp_path / "gen").profiles.live.noise_spacing]


def test_sweeps_at_different_seeds_are_pooled_and_others_refused(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    sweep = ["--generator", str(tmp_path / "gen"), "--classifier", str(tmp_path / "clf"), "--profile", "bank",
             "--steps", "1", "--guidance", "1", "2.5", "--coverage", "--data-dir", str(fixture_dir), "--batch-size", "3"]
    paths = []
    for seed, per_class in ((0, 3), (1, 3), (0, 3), (2, 4)):
        paths.append(str(tmp_path / f"sweep-{len(paths)}.json"))
        measured = tune_sampling.main(tune_sampling.parse_args(
            [*sweep, "--per-class", str(per_class), "--seed", str(seed), "--output", paths[-1]]))
        assert measured["generator"]["path"] == str(tmp_path / "gen") and measured["generator"]["sha256"]
        assert measured["environment"]["torch"] == torch.__version__
    choosing = ["--coverage", "--class-guidance", "--min-class-f1", "0"]
    pooled = tune_sampling.main(tune_sampling.parse_args(["--results", *paths[:2], *choosing]))
    assert [p["path"] for p in pooled["results_from"]] == paths[:2]
    assert all([sum(row) for row in r["predicted_counts_per_class"].values()] == [6] * 9 for r in pooled["results"])
    assert set(pooled["between_sweep_spread"]) == {"coverage_per_class", "recall_per_class"}
    assert len(pooled["per_class_choice"]["picked"]) == 9
    with pytest.raises(SystemExit, match="share a seed"):
        tune_sampling.main(tune_sampling.parse_args(["--results", paths[0], paths[2], *choosing]))
    with pytest.raises(SystemExit, match="differ in --per-class"):
        tune_sampling.main(tune_sampling.parse_args(["--results", paths[0], paths[3], *choosing]))
    # A choice written by --results is not a sweep to pool: its figures may already be pooled.
    (tmp_path / "choice.json").write_text(json.dumps(pooled))
    with pytest.raises(SystemExit, match="pool the sweeps it read"):
        tune_sampling.main(tune_sampling.parse_args(["--results", paths[0], str(tmp_path / "choice.json"), *choosing]))
    retrained = json.loads((tmp_path / "sweep-1.json").read_text())
    retrained["generator"]["sha256"] = {name: "0" * 64 for name in retrained["generator"]["sha256"]}
    (tmp_path / "retrained.json").write_text(json.dumps(retrained))
    with pytest.raises(SystemExit, match="different generator weights"):
        tune_sampling.main(tune_sampling.parse_args(["--results", paths[0], str(tmp_path / "retrained.json"), *choosing]))


@pytest.mark.parametrize("content", ["{not json", json.dumps({"results": []}), json.dumps({"chosen": {}})])
def test_results_that_are_not_a_sweep_are_refused(tmp_path, content):
    (tmp_path / "sweep.json").write_text(content)
    with pytest.raises(SystemExit, match="not a sweep written by"):
        tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "sweep.json")]))
    with pytest.raises(SystemExit, match="not a sweep written by"):
        tune_sampling.main(tune_sampling.parse_args(["--results", str(tmp_path / "missing.json")]))


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--guidance-intervals", "0.8:0.2"],
                                   ["--guidance-intervals", "half"], ["--guidance-intervals", "0:1.5"],
                                   ["--recall-tolerance", "0.05"], ["--coverage", "--recall-tolerance", "0.05"],
                                   ["--coverage", "--class-guidance", "--recall-tolerance", "-0.1"],
                                   ["--noise-spacings", "cosine"], ["--frechet-tolerance", "0.1"],
                                   ["--frechet", "--frechet-tolerance", "0.1"],
                                   ["--frechet", "--class-guidance", "--frechet-tolerance", "-1"],
                                   ["--frechet", "--frechet-reference", "1"], ["--frechet-dims", "-1"],
                                   ["--frechet", "--per-class", "1"]])
def test_bad_flags_are_refused(flags):
    with pytest.raises(SystemExit):
        tune_sampling.parse_args(flags)
