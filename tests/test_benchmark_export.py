"""benchmarks.export runs a real export into a fresh cache and reports it against the one-hour budget."""

import json

from benchmarks import export


def test_benchmark_runs_a_fresh_export_and_projects_it(tmp_path):
    output = tmp_path / "figures.json"
    figures = export.main(export.parse_args(["--per-class", "1", "--workers", "1", "--output", str(output)]))
    assert figures["tiles"] == 9 and figures["per_class"] == 1
    assert figures["projected_min_at_5000"] > figures["wall_min"] > 0
    # Both figures are rounded from the same unrounded projection, so they agree to the projection's rounding.
    assert abs(figures["ratio_to_budget"] - figures["projected_min_at_5000"] / 60) <= 0.005 / 60 + 0.0005
    assert json.loads(output.read_text()) == figures
    assert figures["command"].startswith("python -m benchmarks.export --per-class 1")
    assert figures["export_command"].startswith("python -m training.export_synthetic --per-class 1")
    assert figures["generator"]["sha256"] and figures["classifier"]["sha256"]


def test_benchmark_reads_an_existing_record(tmp_path):
    record = {"command": "python -m training.export_synthetic ...", "sampling": {"profile": "live"}, "workers": 2,
              "wall_time_s": 1800.0, "splits": {"train": {"tiles": 45000, "per_class": 5000}}}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    figures = export.main(export.parse_args(["--from-record", str(path)]))
    assert figures["wall_min"] == 30.0 and figures["validated_tiles_per_s"] == 25.0
    assert figures["ratio_to_budget"] == 0.5
