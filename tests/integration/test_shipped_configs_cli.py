"""Every shipped YAML in configs/ runs through the real CLI with the exact command on its first line (litgpt's
test_config_hub idea): the file parses, builds a valid config for that command, and the command finishes.

To stay cheap, the model and data are swapped for the tiny in-process ones and the run is cut to a couple of
steps with key=value overrides - everything else (the command, the YAML's own keys, the recipe) is the real path.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from tunescope.cli import main
from tunescope.cli.commands import config_class

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def _shrink(config_cls, model: str, data: str) -> list[str]:
    """key=value overrides that keep a run to seconds, for the fields this command's config has."""
    wanted = {"model": model, "data": data, "max_steps": 2, "epochs": 1, "batch_size": 8, "eval_batch_size": 32,
              "probe_batches": 1, "probe_batch_size": 8, "limit": 40, "max_length": 16, "feature_change": "false",
              # plan / run: one candidate (no trials: two steps teach no candidate anything; test_plan_cli tries them)
              "candidates": "lora", "plan_probe_examples": 16}
    names = {f.name for f in dataclasses.fields(config_cls)}
    return [f"{k}={v}" for k, v in wanted.items() if k in names]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_runs(path, tiny_model_dir, toy_csv, tmp_path, monkeypatch):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# tunescope "), first
    argv = shlex.split(first[len("# tunescope "):])
    command = argv[0]
    monkeypatch.chdir(Path(__file__).parents[2])  # the first line names the file relative to the repo root
    out = tmp_path / "run"
    overrides = _shrink(config_class(command), str(tiny_model_dir["bert"]), str(toy_csv))
    assert main([*argv, "--out", str(out), *overrides]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["command"] in (command, "finetune")
    assert (out / "config.yaml").is_file() and (out / "report.html").is_file()
