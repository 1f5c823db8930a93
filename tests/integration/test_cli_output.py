"""Output conventions: results on stdout (--json: one JSON object, the last line), logs on stderr, -q silences
every progress bar, -v works after the subcommand and shows tunescope's own debug lines."""

from __future__ import annotations

import json
import logging
import os

import pytest

from tunescope.cli import main


@pytest.fixture
def restore_env():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_quiet_json_and_verbose_after_the_subcommand(tiny_model_dir, toy_csv, tmp_path, capfd, restore_env):
    argv = ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--strategy", "lora",
            "--out", str(tmp_path / "run"), "--max-steps", "2", "--no-feature-change", "-q", "--json", "-v"]
    assert main(argv) == 0
    out, err = capfd.readouterr()
    assert "{'loss'" not in out  # no Trainer log dicts on stdout
    results = json.loads(out.strip().splitlines()[-1])
    assert results["command"] == "finetune" and 0 <= results["eval"]["accuracy"] <= 1
    assert results == json.loads((tmp_path / "run" / "results.json").read_text())
    assert "it/s]" not in err and "%|" not in err, err[-2000:]  # no tqdm bar of ours, the Trainer's or datasets'
    assert logging.getLogger("tunescope").level == logging.DEBUG  # -v after the subcommand: our debug lines


def test_verbose_before_the_subcommand_still_counts(capsys):
    from tunescope.cli import build_parser

    args = build_parser().parse_args(["-v", "diagnose"])
    assert args.verbose and not args.quiet
    args = build_parser().parse_args(["diagnose", "-q"])
    assert args.quiet and not args.verbose


def test_json_on_a_command_without_a_recipe(capsys):
    """--json prints the results of commands that are not recipes too (here `assets list`), as the last line."""
    from tunescope.assets import ASSETS, is_cached

    assert main(["assets", "list", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [a["name"] for a in payload["assets"]] == list(ASSETS.names())
    assert [a["cached"] for a in payload["assets"]] == [is_cached(name) for name in ASSETS.names()]
