"""RunDir: every path of a run directory, named once, and the run's config / results files.

Layout (the contract users and checks rely on):
    config.yaml     the resolved config          results.json   the final results
    report.html     the self-contained report    metrics.jsonl  one JSON object per logged step
    logits.npz      validation / test logits     checkpoints/   Trainer checkpoints; checkpoints/final the model
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunescope.config import load_yaml, save_config
from tunescope.errors import UserError
from tunescope.io import atomic_write_json


@dataclass(frozen=True)
class RunDir:
    """A run directory (it need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def logits_file(self) -> Path:
        return self.path / "logits.npz"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        """The trained model: safetensors folder, PEFT adapter folder, or a strategy's own format (SIFT delta)."""
        return self.checkpoints / "final"

    def sub(self, name: str) -> RunDir:
        """A sub-run of an orchestrating recipe (compare, transfer, basins)."""
        return RunDir(self.path / name)

    def has_results(self) -> bool:
        return self.results_file.is_file()

    def read_results(self) -> dict:
        try:
            return json.loads(self.results_file.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"bad file {str(self.results_file)!r}: not readable JSON ({e}); rerun with --overwrite") \
                from None

    def write_results(self, results: dict) -> None:
        atomic_write_json(self.results_file, results)

    def write_config(self, config: Any) -> None:
        save_config(config, self.config_file)

    def saved_config(self) -> dict | None:
        return load_yaml(self.config_file) if self.config_file.is_file() else None


def config_as_saved(config: Any) -> dict:
    """The config as config.yaml holds it (a YAML round trip, so tuples and lists compare equal)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))


def config_difference(saved: dict, config: Any) -> str | None:
    """None when `saved` (a config.yaml) describes `config`; else 'key: saved -> new' for the first difference."""
    current = config_as_saved(config)
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
    return None
