"""Every shipped YAML in configs/ names its exact command on line 1 and builds a valid config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunescope.cli.commands import config_class
from tunescope.config import build_config, load_yaml

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# tunescope ") and f"--config configs/{path.name}" in first
    command = first.split()[2]
    build_config(config_class(command), load_yaml(path))
