import json
import shlex

import numpy as np
import pytest

from tests.conftest import save_tiny_models
from training import brightness_modes


def test_tiles_fall_in_the_band_of_their_mean_grey_level():
    tiles = np.stack([np.full((28, 28, 3), level, dtype=np.uint8) for level in (10, 100, 100, 230)])
    fractions = brightness_modes.band_fractions(tiles)
    assert fractions == pytest.approx([0.25, 0.5, 0, 0, 0, 0, 0.25])
    assert brightness_modes.total_variation(fractions, fractions) == 0.0
    assert brightness_modes.total_variation([1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1]) == 1.0


def test_script_compares_generated_bands_with_train_and_records_how(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    output = tmp_path / "modes.json"
    result = brightness_modes.main(brightness_modes.parse_args([
        "--data-dir", str(fixture_dir), "--generator", str(tmp_path / "gen"), "--count", "3", "--output", str(output)]))
    assert json.loads(output.read_text()) == result
    assert sum(result["train"]) == pytest.approx(1.0) and sum(result["generated"]) == pytest.approx(1.0)
    assert result["class"] == "background" and len(result["bands"]) == 7
    assert 0.0 <= result["total_variation"] <= 1.0
    assert result["command"].startswith("python -m training.brightness_modes") and result["generator"]["sha256"]
    recorded = brightness_modes.parse_args(shlex.split(result["command"])[3:])  # the recorded command runs as written
    assert recorded.tissue == "background" and recorded.count == 3


def test_coverage_is_split_by_band_against_train_tiles(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    result = brightness_modes.main(brightness_modes.parse_args([
        "--data-dir", str(fixture_dir), "--generator", str(tmp_path / "gen"), "--count", "8",
        "--coverage-features", "classifier", "--classifier", str(tmp_path / "clf")]))
    figures = result["coverage_by_band"]
    assert figures["features"] == "classifier" and figures["k"] == 5 and len(figures["per_band"]) == 7
    assert sum(row["train_tiles"] for row in figures["per_band"]) == 8
    assert sum(row["generated_tiles"] for row in figures["per_band"]) == 8
    # The bands' shares, weighted by their tile counts, add up to the overall figures.
    for count, figure in (("train_tiles", "coverage"), ("generated_tiles", "precision")):
        rows = [row for row in figures["per_band"] if row[count]]
        assert all(0.0 <= row[figure] <= 1.0 for row in rows)
        assert sum(row[count] * row[figure] for row in rows) / 8 == pytest.approx(figures[figure])
        assert all(row[figure] is None for row in figures["per_band"] if not row[count])
    # Split by texture instead, the same tiles in other groups: the counts and weighted shares add up again.
    assert figures["texture_bands"] == ["0-2", "2-4", "4-8", "8-256"]
    texture = figures["per_texture_band"]
    tiny_steps = brightness_modes.texture_band_indices(np.zeros((2, 28, 28, 3), np.uint8))
    assert tiny_steps.tolist() == [0, 0] and brightness_modes.texture_band_indices(
        (np.indices((28, 28)).sum(0) % 2 * 255).astype(np.uint8)[None, ..., None].repeat(3, -1)).tolist() == [3]
    for count, figure in (("train_tiles", "coverage"), ("generated_tiles", "precision")):
        assert sum(row[count] for row in texture) == 8
        assert sum(row[count] * row[figure] for row in texture if row[count]) / 8 == pytest.approx(figures[figure])
    with pytest.raises(SystemExit):
        brightness_modes.parse_args(["--count", "6", "--coverage-features", "judge"])


def test_coverage_is_also_split_into_exact_colour_tiles_and_the_rest(tmp_path, fixture_dir):
    save_tiny_models(tmp_path)
    result = brightness_modes.main(brightness_modes.parse_args([
        "--data-dir", str(fixture_dir), "--generator", str(tmp_path / "gen"), "--count", "8", "--exact-colours", "2",
        "--exact-tolerance", "255", "--coverage-features", "classifier", "--classifier", str(tmp_path / "clf")]))
    exact = result["exact_colours"]
    assert len(exact["colours"]) == 2 and exact["train_share"] == exact["generated_share"] == 1.0  # every pixel is near
    figures = result["coverage_by_band"]
    assert figures["exact_colour_tiles"]["train_tiles"] == 8 and figures["other_tiles"]["train_tiles"] == 0
    assert figures["exact_colour_tiles"]["coverage"] == pytest.approx(figures["coverage"])
    with pytest.raises(SystemExit):
        brightness_modes.parse_args(["--exact-min-share", "0"])
