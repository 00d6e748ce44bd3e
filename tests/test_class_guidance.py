from pathgen.data import CLASS_NAMES, NUM_CLASSES
from training.class_guidance import choose_class_guidance, combined_figures

RULE = {"min_class_f1": 0.85, "tolerance": 0.01, "near_copy_tolerance": 0.01, "texture_tolerance": 0.03,
        "coverage_tolerance": 0.03}


def sweep_result(guidance: float, speed: float, correct: dict[int, int], coverage: dict[int, float],
                 texture_error: float = 0.05, lost_to: int | None = None, recall: dict[int, float] | None = None
                 ) -> dict:
    """100 tiles a class; class c has correct[c] recognised (default 100), the rest labelled as class `lost_to`
    (default: the next class)."""
    rows, covered = {}, {}
    for c, name in enumerate(CLASS_NAMES):
        row = [0] * NUM_CLASSES
        row[c] = correct.get(c, 100)
        row[(c + 1) % NUM_CLASSES if lost_to in (None, c) else lost_to] = 100 - row[c]
        rows[name] = row
        covered[name] = coverage.get(c, 0.9)
    return {"steps": 50, "guidance": guidance, "guidance_interval": [0.0, 0.5], "solver": "sde-dpmsolver++",
            "discriminator_guidance": 0.0, "images_per_second": speed, "predicted_counts_per_class": rows,
            "coverage_per_class": covered, "near_copy_fraction_per_class": dict.fromkeys(CLASS_NAMES, 0.0),
            "texture_error_per_class": dict.fromkeys(CLASS_NAMES, texture_error),
            "recall_per_class": {name: (recall or {}).get(c, 0.85) for c, name in enumerate(CLASS_NAMES)}}


def test_each_class_takes_the_scale_that_covers_most_of_its_train_tiles_while_recognised():
    # Unguided, mucus (4) covers far more of train and is still recognised; stroma (7) covers more too, but is
    # recognised in only 70 of 100 tiles, below the 0.85 floor, so it keeps the guided scale.
    unguided = sweep_result(1.0, 3.0, correct={4: 96, 7: 70}, coverage={4: 0.95, 7: 0.97})
    guided = sweep_result(1.5, 2.0, correct={4: 99, 7: 95}, coverage={4: 0.80, 7: 0.85})
    choice = choose_class_guidance([unguided, guided], guided, RULE)
    assert choice["stands"] and choice["picked"]["mucus"] == 1.0 and choice["picked"]["stroma"] == 1.5
    # Classes where both scales tie on every figure take the lower one; the profile's own scale needs no entry.
    assert choice["picked"]["adipose"] == 1.0
    assert choice["class_guidance"] == {key: 1.0 for key, scale in choice["picked"].items() if scale == 1.0}
    assert choice["coverage_mean"] == sum(r["coverage_per_class"][n] for r, n in
                                          zip([unguided] * 7 + [guided] + [unguided], CLASS_NAMES, strict=True)) / 9


def test_among_guided_scales_that_tie_on_every_figure_the_lower_is_taken_whatever_the_measured_speed():
    # Two guided scales cost the same; the higher one happened to be timed faster on a busy host.
    lower = sweep_result(1.5, 2.0, correct={}, coverage={})
    higher = sweep_result(2.0, 4.0, correct={}, coverage={})
    choice = choose_class_guidance([higher, lower], higher, RULE)
    assert choice["stands"] and set(choice["picked"].values()) == {1.5}
    assert choice["class_guidance"] == dict.fromkeys(choice["picked"], 1.5)


def test_with_a_recall_tolerance_a_scale_that_loses_recall_is_not_chosen_for_its_coverage():
    # Stronger guidance spreads smooth muscle (5) over more train tiles (coverage up) but leaves more train tiles
    # without a nearby generated tile (recall down by 0.08).
    unguided = sweep_result(1.0, 3.0, correct={}, coverage={5: 0.80}, recall={5: 0.84})
    guided = sweep_result(2.0, 2.0, correct={}, coverage={5: 0.95}, recall={5: 0.76})
    assert choose_class_guidance([unguided, guided], guided, RULE)["picked"]["smooth_muscle"] == 2.0
    with_recall = RULE | {"recall_tolerance": 0.05}
    assert choose_class_guidance([unguided, guided], guided, with_recall)["picked"]["smooth_muscle"] == 1.0
    # Within the tolerance, coverage decides again.
    close = sweep_result(2.0, 2.0, correct={}, coverage={5: 0.95}, recall={5: 0.80})
    assert choose_class_guidance([unguided, close], close, with_recall)["picked"]["smooth_muscle"] == 2.0


def test_a_choice_that_drags_a_neighbours_f1_below_the_floor_does_not_stand():
    # Unguided, every class keeps 86 of 100 tiles, above the 0.85 floor on its own row, and covers more of train.
    spread = sweep_result(1.0, 3.0, correct=dict.fromkeys(range(NUM_CLASSES), 86), coverage={})
    guided = sweep_result(1.5, 2.0, correct={}, coverage=dict.fromkeys(range(NUM_CLASSES), 0.80))
    # Lost tiles spread over the classes: every combined F1 is 0.86, so the choice stands.
    choice = choose_class_guidance([spread, guided], guided, RULE)
    assert choice["stands"] and abs(choice["min_class_f1"] - 0.86) < 1e-9 and set(choice["picked"].values()) == {1.0}
    # Lost tiles all labelled adipose: adipose's precision collapses, so the choice falls back to one scale.
    piled = sweep_result(1.0, 3.0, correct=dict.fromkeys(range(NUM_CLASSES), 86), coverage={}, lost_to=0)
    choice = choose_class_guidance([piled, guided], guided, RULE)
    assert choice["min_class_f1"] < 0.85 and not choice["stands"] and choice["class_guidance"] == {}


def test_combined_figures_match_a_confusion_matrix_built_by_hand():
    perfect = sweep_result(1.5, 2.0, correct={}, coverage={})
    half = sweep_result(1.0, 3.0, correct={0: 50}, coverage={0: 0.5})
    picks = {name: perfect for name in CLASS_NAMES} | {CLASS_NAMES[0]: half}
    figures = combined_figures(picks)
    # Class 0: 50 right, 50 sent to class 1 -> recall 0.5, precision 1 -> F1 2/3; class 1: recall 1, precision
    # 100/150 -> F1 0.8; the other seven are perfect.
    assert abs(figures["per_class_f1"][CLASS_NAMES[0]] - 2 / 3) < 1e-9
    assert abs(figures["per_class_f1"][CLASS_NAMES[1]] - 0.8) < 1e-9
    assert abs(figures["macro_f1"] - (2 / 3 + 0.8 + 7) / 9) < 1e-9
    assert abs(figures["coverage_mean"] - (0.5 + 8 * 0.9) / 9) < 1e-9


def test_scales_measured_at_another_noise_spacing_are_not_combined_with_the_chosen_one():
    # The same two scales at each spacing; at trailing spacing the unguided one covers far more of mucus (4), but
    # the chosen setting is Karras-spaced, so mucus picks among the Karras rows only.
    karras = {"noise_spacing": "karras"}
    trailing_unguided = sweep_result(1.0, 3.0, correct={}, coverage={4: 0.99}) | {"noise_spacing": "trailing"}
    karras_unguided = sweep_result(1.0, 3.0, correct={}, coverage={4: 0.70}) | karras
    karras_guided = sweep_result(1.5, 2.0, correct={}, coverage={4: 0.90}) | karras
    results = [trailing_unguided, karras_unguided, karras_guided]
    assert choose_class_guidance(results, karras_guided, RULE)["picked"]["mucus"] == 1.5
    chosen_trailing = trailing_unguided | {"guidance": 1.5}
    assert choose_class_guidance(results, chosen_trailing, RULE)["picked"]["mucus"] == 1.0


def test_with_a_frechet_tolerance_the_scale_closest_to_train_wins_among_those_that_cover_as_much():
    # Both scales cover adipose (0) alike; the lower scale's adipose tiles sit twice as far from train as a whole.
    lower = sweep_result(1.5, 2.0, correct={}, coverage={0: 0.96})
    higher = sweep_result(2.0, 2.0, correct={}, coverage={0: 0.95})
    lower["frechet_per_class"] = dict.fromkeys(CLASS_NAMES, 1.0) | {CLASS_NAMES[0]: 2.0}
    higher["frechet_per_class"] = dict.fromkeys(CLASS_NAMES, 1.05) | {CLASS_NAMES[0]: 1.0}
    assert choose_class_guidance([lower, higher], higher, RULE)["picked"]["adipose"] == 1.5  # the lower scale
    with_frechet = RULE | {"frechet_tolerance": 0.1}
    picked = choose_class_guidance([lower, higher], higher, with_frechet)["picked"]
    # Within 10% of the lowest distance the other classes keep the lower scale.
    assert picked["adipose"] == 2.0 and picked["background"] == 1.5
    # A distance a hair below zero (sqrtm rounding) still leaves a scale to pick.
    higher["frechet_per_class"][CLASS_NAMES[1]] = -1e-7
    assert choose_class_guidance([lower, higher], higher, with_frechet)["picked"]["background"] == 2.0
    # The distance never overrides coverage: a scale that covers less of train is out before it is read.
    lower["coverage_per_class"][CLASS_NAMES[0]] = 0.99
    higher["coverage_per_class"][CLASS_NAMES[0]] = 0.90
    assert choose_class_guidance([lower, higher], higher, with_frechet)["picked"]["adipose"] == 1.5
