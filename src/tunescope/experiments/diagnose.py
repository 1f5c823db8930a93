"""`tunescope diagnose`, and the diagnose-first hooks of the fine-tuning recipe.

- `diagnose_run(config, run_dir)`: per-layer diagnostics of a model on probe batches of a data set, inflection-layer
  selection, and Delta-CKA against `--against CHECKPOINT` (same probe inputs) -> results.json `diagnostics.*` + report.
- Hooks (FinetuneConfig.diagnose, on in `tunescope run`): before training, the per-layer table of the pre-trained
  model (unless the strategy already measured it, as `lora-inflection` does) and its block outputs on the probe
  batches; after training, Delta-CKA per layer between pre-trained and fine-tuned model, and the table of the
  fine-tuned model (`diagnostics_after`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tunescope.config import check, save_config
from tunescope.errors import UserError
from tunescope.experiments.hooks import RunState, register_hook
from tunescope.io import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class DiagnoseConfig:
    """What `tunescope diagnose` measures."""

    model: str = "minilm-l6"
    """Model: a named asset, a local folder (a tunescope run's checkpoints/final works), or a hub id."""
    data: str = "rotten_tomatoes"
    """Data the probe batches are drawn from (training split)."""
    text_column: str | None = None
    """Text column of a local or hub data set."""
    label_column: str | None = None
    """Label column of a local or hub data set."""
    against: str | None = None
    """A second checkpoint (folder, run directory or asset): Delta-CKA per layer against it on the same inputs."""
    probe_batches: int = 4
    """Number of probe batches."""
    probe_batch_size: int = 16
    """Examples per probe batch."""
    inflection_width: int | None = None
    """Width w of the inflection band (default ceil(num_layers / 4))."""
    max_length: int = 64
    """Maximum tokens per example."""
    limit: int | None = None
    """Cap on examples per split when loading the data."""
    seed: int = 0
    """Seed of the data split and the probe draw."""

    def __post_init__(self):
        check(self.probe_batches >= 1, "probe_batches", self.probe_batches, "a positive integer")
        check(self.probe_batch_size >= 1, "probe_batch_size", self.probe_batch_size, "a positive integer")
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        check(self.inflection_width is None or self.inflection_width >= 1, "inflection_width",
              self.inflection_width, "a positive integer")


def resolve_checkpoint(path: str) -> str:
    """A run directory means its final checkpoint; anything else is passed through to the model loader."""
    p = Path(path)
    if (p / "checkpoints" / "final").is_dir():
        return str(p / "checkpoints" / "final")
    return path


def _probe(tokenized_train, tokenizer, batches: int, size: int, seed: int) -> list[dict]:
    from tunescope.data.tokenize import probe_batches

    return probe_batches(tokenized_train, tokenizer, batch_size=size, num_batches=batches, seed=seed)


def diagnose_run(config: DiagnoseConfig, run_dir: str | Path, *, write_report: bool = True) -> dict:
    """Measure, select, optionally compare against a second checkpoint; write results.json (+ report.html)."""
    from tunescope.diagnostics.layerwise import add_delta_cka, collect_hidden_states, diagnose
    from tunescope.experiments.task import load_task
    from tunescope.models.load import load_classifier

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    start = time.perf_counter()
    task = load_task(config, resolve_checkpoint(config.model))
    data, model, tokenizer, tokenized = task.data, task.model, task.tokenizer, task.tokenized
    probe = _probe(tokenized["train"], tokenizer, config.probe_batches, config.probe_batch_size, config.seed)
    found, capture = diagnose(model, probe, width=config.inflection_width, keep_hidden=config.against is not None)
    if config.against:
        other, _ = load_classifier(resolve_checkpoint(config.against), data.num_labels, label_names=data.label_names)
        add_delta_cka(found["layers"], capture.hidden_states(), collect_hidden_states(other, probe))
        found["against"] = config.against
    results = {"model": config.model, "data": config.data, "seed": config.seed, "command": "diagnose",
               "diagnostics": found, "wall_seconds": round(time.perf_counter() - start, 2)}
    atomic_write_json(run_dir / "results.json", results)
    if write_report:
        from tunescope.report.html import build_report

        build_report(run_dir)
    return results


# --- hooks of the fine-tuning recipe (FinetuneConfig.diagnose) ---------------------------------------------------

def _run_probe(run: RunState) -> list[dict]:
    cfg = run.config
    n, size = int(getattr(cfg, "probe_batches", 2)), int(getattr(cfg, "probe_batch_size", 16))
    if n < 1 or size < 1:
        raise UserError(f"bad value {min(n, size)} for probe_batches/probe_batch_size: expected >= 1")
    return _probe(run.tokenized["train"], run.tokenizer, n, size, int(cfg.seed))


def _wants(run: RunState) -> bool:
    return bool(getattr(run.config, "diagnose", False)) or run.config.strategy == "lora-inflection"


def before_train(run: RunState) -> None:
    """Pre-trained model: per-layer table (if not measured yet) and block outputs on the probe batches."""
    if not _wants(run):
        return
    from tunescope.diagnostics.layerwise import collect_hidden_states, diagnose

    probe = _run_probe(run)
    pristine = run.base_model_factory()
    if "layers" not in run.results.get("diagnostics", {}):
        found, capture = diagnose(pristine, probe, width=getattr(run.config, "inflection_width", None),
                                  keep_hidden=True)
        run.results["diagnostics"] = found
        hidden = capture.hidden_states()
    else:
        hidden = collect_hidden_states(pristine, probe)
    run.extras["diag_probe"] = probe
    run.extras["diag_hidden_before"] = hidden
    del pristine


def after_train(run: RunState) -> None:
    """Delta-CKA (pre-trained vs fine-tuned) per layer, and the fine-tuned model's per-layer table."""
    if "diag_probe" not in run.extras:
        return
    from tunescope.diagnostics.layerwise import add_delta_cka, collect_hidden_states, layer_diagnostics

    probe = run.extras["diag_probe"]
    found = run.results["diagnostics"]
    add_delta_cka(found["layers"], run.extras["diag_hidden_before"], collect_hidden_states(run.model, probe))
    after, _ = layer_diagnostics(run.model, probe)
    for row, before in zip(after, found["layers"]):
        row["delta_cka"] = before["delta_cka"]
    run.results["diagnostics_after"] = {"layers": after}


register_hook("before_train", before_train)
register_hook("after_train", after_train)
