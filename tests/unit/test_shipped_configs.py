"""Every shipped YAML in configs/ names its exact command on line 1 and builds a valid config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunescope.config import build_config, load_yaml

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def _config_class(command: str):
    if command in ("run", "finetune"):
        from tunescope.experiments.finetune import FinetuneConfig

        return FinetuneConfig
    import importlib

    module = importlib.import_module(f"tunescope.cli.commands.{command}")
    return getattr(module, "CONFIG_CLASS")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# tunescope ") and f"--config configs/{path.name}" in first
    command = first.split()[2]
    build_config(_config_class(command), load_yaml(path))
