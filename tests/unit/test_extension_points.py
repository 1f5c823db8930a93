"""The extension points of issue 11: option groups, the Strategy and add-on protocols, generated flags, RunDir."""

from __future__ import annotations

import dataclasses

import pytest

from tunescope.cli import main
from tunescope.cli.commands import COMMAND_CONFIGS, config_class
from tunescope.config import build_config
from tunescope.errors import UserError
from tunescope.experiments.finetune import FinetuneConfig
from tunescope.experiments.ntk import NTKConfig
from tunescope.experiments.recipe import reusable_results, run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.registry import Registry
from tunescope.strategies import STRATEGIES
from tunescope.strategies.base import (
    StrategyBase,
    check_options,
    check_strategy,
    learning_rate_for,
)
from tunescope.training.addons import TRAINING_ADDONS, AddonBase


@pytest.mark.parametrize("config_cls", [FinetuneConfig, NTKConfig])
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_command_holds_every_strategys_options(config_cls, name):
    """A command that takes --strategy can run every strategy: its config holds each strategy's option groups."""
    for group in STRATEGIES.get(name).options:
        assert issubclass(config_cls, group), (config_cls.__name__, name, group.__name__)


def test_option_groups_are_declared_once():
    """A field is declared in one option group; a config may re-declare it only to change its default
    (e.g. diagnose's probe_batches = 4), never with another type (a copy that drifted)."""
    for command in COMMAND_CONFIGS:
        cls = config_class(command)
        owners: dict[str, list[type]] = {}
        for klass in cls.__mro__:
            for name in getattr(klass, "__annotations__", {}):
                owners.setdefault(name, []).append(klass)
        for name, classes in owners.items():
            types = {str(k.__annotations__[name]) for k in classes}
            assert len(types) == 1, (command, name, [k.__name__ for k in classes], types)


def test_each_group_validates_its_own_fields():
    with pytest.raises(UserError, match="sift_rate"):
        build_config(FinetuneConfig, {"sift_rate": 0})
    with pytest.raises(UserError, match="lora_rank"):
        build_config(NTKConfig, {"lora_rank": 0})
    with pytest.raises(UserError, match="max_length"):
        build_config(config_class("diagnose"), {"max_length": 1})
    with pytest.raises(UserError, match="finite"):
        build_config(FinetuneConfig, {"epochs": "inf"})


class _Good(StrategyBase):
    name = "good"
    default_learning_rate = 1e-3


class _Misspelled(_Good):
    name = "misspelled"

    def create_optimiser(self, model, ctx):  # not a protocol member: would silently never run
        return None


def test_registration_checks_the_whole_protocol():
    reg = Registry("strategy", check=check_strategy)
    reg.register("good", _Good())
    with pytest.raises(TypeError, match="create_optimiser"):
        reg.register("misspelled", _Misspelled())
    with pytest.raises(TypeError, match="calls itself"):
        reg.register("other-name", _Good())

    class NoRate(StrategyBase):
        name = "norate"

    with pytest.raises(TypeError, match="default_learning_rate"):
        reg.register("norate", NoRate())


def test_learning_rate_is_decided_in_one_place():
    sift = STRATEGIES.get("sift")
    assert learning_rate_for(sift, FinetuneConfig(strategy="sift")) == sift.default_learning_rate
    assert learning_rate_for(sift, FinetuneConfig(strategy="sift", learning_rate=0.02)) == 0.02


def test_a_command_without_a_strategys_options_refuses_it():
    @dataclasses.dataclass
    class Bare:
        strategy: str = "sift"

    with pytest.raises(UserError, match="SiftOptions"):
        check_options(STRATEGIES.get("sift"), Bare(), "bare")


def test_addon_registration_refuses_a_misspelled_stage():
    class Typo(AddonBase):
        name = "typo"

        def after_trian(self, run):
            pass

    with pytest.raises(TypeError, match="after_trian"):
        Registry("training add-on", check=TRAINING_ADDONS._check).register("typo", Typo())


def test_flags_are_generated_from_the_config(capsys):
    # a flag for every field, with its default in the help; aliases keep the short names
    assert main(["finetune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--sift-rate", "--lora-rank", "--noise-sigma", "--calibration-bins", "--probe-batches"):
        assert flag in text
    assert "(default: 0.01)" in text and "(default: lora)" in text
    # a flag the command does not use is an error, not silently dropped
    assert main(["transfer", "--seed", "3", "--out", "/nonexistent"]) == 2
    assert "unrecognized arguments: --seed" in capsys.readouterr().err
    assert main(["jump", "--lora-rank", "4"]) == 2


def test_aliases_reach_the_same_field(tmp_path):
    from tunescope.cli import build_parser
    from tunescope.cli.common import resolve_config

    args = build_parser().parse_args(["finetune", "--lr", "0.003", "--rank", "4", "--no-feature-change"])
    config = resolve_config(FinetuneConfig, args)
    assert (config.learning_rate, config.lora_rank, config.feature_change) == (0.003, 4, False)


def test_rundir_reuses_only_a_matching_finished_run(tmp_path):
    config = config_class("diagnose")(probe_batches=3)
    calls = []

    def body(rd: RunDir) -> dict:
        calls.append(rd.path)
        return {"value": 1}

    first = run_recipe("diagnose", config, tmp_path / "a", body, write_report=False)
    assert first["command"] == "diagnose" and "wall_seconds" in first
    assert RunDir(tmp_path / "a").has_results()
    assert reusable_results(RunDir(tmp_path / "a"), config)["value"] == 1
    again = run_recipe("diagnose", config, tmp_path / "a", body, reuse=True, write_report=False)
    assert again == first and len(calls) == 1
    other = dataclasses.replace(config, probe_batches=5)
    with pytest.raises(UserError, match="probe_batches: 3 -> 5"):
        run_recipe("diagnose", other, tmp_path / "a", body, reuse=True, write_report=False)


def test_results_carry_their_provenance(tmp_path):
    from datetime import datetime

    from tunescope.provenance import SCHEMA_VERSION, set_command_line

    set_command_line(["diagnose", "--probe-batches", "3"])
    results = run_recipe("diagnose", config_class("diagnose")(), tmp_path / "p", lambda rd: {}, write_report=False)
    saved = RunDir(tmp_path / "p").read_results()
    assert saved == results
    assert saved["schema_version"] == SCHEMA_VERSION
    assert {"torch", "transformers", "peft", "tunescope"} <= set(saved["versions"])
    assert saved["command_line"] == "tunescope diagnose --probe-batches 3"
    assert datetime.fromisoformat(saved["started_at"]).tzinfo is not None


def test_report_to_is_a_checked_training_option():
    assert FinetuneConfig().report_to == ["none"]
    with pytest.raises(UserError, match="report_to"):
        build_config(FinetuneConfig, {"report_to": "nosuchlogger"})
    from transformers.integrations import get_available_reporting_integrations

    missing = [n for n in ("tensorboard", "wandb", "mlflow") if n not in get_available_reporting_integrations()]
    if missing:  # a known integration that is not installed says how to install it
        with pytest.raises(UserError, match=f"pip install {missing[0]}"):
            build_config(FinetuneConfig, {"report_to": missing[0]})
