"""`tunescope diagnose`: per-layer diagnostics of a model on probe batches of a data set, inflection-layer
selection, and Delta-CKA against `--against CHECKPOINT` (same probe inputs) -> results.json `diagnostics.*` + report.

(The same tables inside a fine-tuning run come from the `diagnostics` training add-on, training/diagnostics_addon.py.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tunescope.diagnostics.options import ProbeOptions, draw_probe
from tunescope.experiments.preflight import preflight
from tunescope.experiments.recipe import run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.tasks.options import TaskOptions

log = logging.getLogger(__name__)


@dataclass
class DiagnoseConfig(ProbeOptions, TaskOptions):
    """What `tunescope diagnose` measures: a model (a run's checkpoints/final works) on probe batches of a data set."""

    against: str | None = None
    """A second checkpoint (folder, run directory or asset): Delta-CKA per layer against it on the same inputs."""
    probe_batches: int = 4
    """Number of probe batches (drawn from the training split)."""
    metrics: list[str] | None = None
    """Per-layer metrics to record (default: every registered one; see `tunescope diagnose --help`)."""


def resolve_checkpoint(path: str) -> str:
    """A run directory means its final checkpoint; anything else is passed through to the model loader."""
    final = RunDir(Path(path)).final
    return str(final) if final.is_dir() else path


def diagnose_run(config: DiagnoseConfig, run_dir: str | Path, *, write_report: bool = True) -> dict:
    """Measure, select, optionally compare against a second checkpoint; write results.json (+ report.html)."""
    from tunescope.diagnostics.layerwise import (
        add_delta_cka,
        collect_hidden_states,
        diagnose,
    )
    from tunescope.models.load import load_classifier
    from tunescope.tasks import load_task

    def body(_rd: RunDir) -> dict:
        task = load_task(config, resolve_checkpoint(config.model))
        data, model = task.data, task.model
        probe = draw_probe(config, task.tokenized["train"], task.tokenizer)
        found, capture = diagnose(model, probe, width=config.inflection_width, keep_hidden=config.against is not None,
                                  metrics=config.metrics)
        if config.against:
            other, _ = load_classifier(resolve_checkpoint(config.against), data.num_labels,
                                       label_names=data.label_names)
            add_delta_cka(found["layers"], capture.hidden_states(), collect_hidden_states(other, probe))
            found["against"] = config.against
        return {"model": config.model, "data": config.data, "seed": config.seed, "diagnostics": found}

    # Both models checked on weightless copies first: a bad --against fails before the data and --model load.
    preflight(config, model=resolve_checkpoint(config.model),
              checkpoints={"--against": resolve_checkpoint(config.against) if config.against else None})
    return run_recipe("diagnose", config, run_dir, body, write_report=write_report)
