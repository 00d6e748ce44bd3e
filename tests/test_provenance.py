"""A run's recorded command repeats the run: provenance.command_line spells each setting as `--dest`, so every
script that records one must accept each of its settings under that spelling."""

import argparse
import importlib

import pytest

from training import provenance

RECORDING_SCRIPTS = [
    "training.augmentation_study", "training.brightness_modes", "training.build_bank", "training.evaluate_generator",
    "training.fit_flat_fields",
    "training.export_synthetic", "training.realism_report", "training.train_discriminator", "training.train_generator",
    "training.train_judge", "training.tune_sampling", "benchmarks.export", "benchmarks.generation",
    "benchmarks.training_step",
]


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def script_parser(module_name: str, monkeypatch) -> argparse.ArgumentParser:
    def capture(self, *args, **kwargs):
        raise _Captured(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    try:
        importlib.import_module(module_name).parse_args([])
    except _Captured as captured:
        return captured.parser
    raise AssertionError(f"{module_name}.parse_args never parsed")


@pytest.mark.parametrize("module_name", RECORDING_SCRIPTS)
def test_every_setting_a_script_records_is_a_flag_it_accepts(module_name, monkeypatch):
    parser = script_parser(module_name, monkeypatch)
    settings = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]
    assert settings
    for action in settings:
        recorded = "--" + action.dest.replace("_", "-")
        assert recorded in action.option_strings, f"{module_name} records {recorded}, which it does not accept"
        if isinstance(action.default, bool) or action.const is True:
            assert isinstance(action, argparse.BooleanOptionalAction), f"{recorded} cannot record --no-{recorded[2:]}"


def test_the_recorded_command_parses_back_to_the_same_settings():
    from training import noise_levels

    args = noise_levels.parse_args(["--noise-sampling", "lognormal", "--uniform-share", "0.2", "--band-edges", "1", "3"])
    recorded = provenance.command_line("training.noise_levels", args).split()
    assert recorded[:3] == ["python", "-m", "training.noise_levels"]
    assert noise_levels.parse_args(recorded[3:]) == args
