"""`tunescope diagnose`: per-layer diagnostics of a model on probe batches of a data set, inflection-layer
selection, and Delta-CKA against `--against CHECKPOINT` (same probe inputs) -> results.json `diagnostics.*` + report.

Two tasks (`--task`): `classification` (a sequence classifier, the loss its cross-entropy on the label) and
`causal-lm` (a decoder on SFT data, tokenised as `tunescope sft` trains it: the loss is the SFT loss, the mean token
NLL over the completion tokens, labels -100 everywhere else). By default the task follows the data: SFT data (the
named asset quartz, or a local file with a `messages` column or `prompt` + `completion` columns) is causal-lm,
anything else classification. Either way the probe batches go through the task's own collator, so every metric
that needs a backward pass measures the task's training loss.

(The same tables inside a fine-tuning run come from the `diagnostics` training add-on, training/diagnostics_addon.py.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tunescope.config import check
from tunescope.diagnostics.options import ProbeOptions, draw_probe
from tunescope.errors import UserError
from tunescope.experiments.preflight import preflight
from tunescope.experiments.recipe import run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.tasks.options import TaskOptions

log = logging.getLogger(__name__)

DIAGNOSE_TASKS = ("classification", "causal-lm")


@dataclass
class DiagnoseConfig(ProbeOptions, TaskOptions):
    """What `tunescope diagnose` measures: a model (a run's checkpoints/final works) on probe batches of a data set."""

    against: str | None = None
    """A second checkpoint (folder, run directory or asset): Delta-CKA per layer against it on the same inputs."""
    probe_batches: int = 4
    """Number of probe batches (drawn from the training split)."""
    metrics: list[str] | None = None
    """Per-layer metrics to record (default: every registered one; see `tunescope diagnose --help`)."""
    task: str | None = None
    """classification, or causal-lm: a decoder on SFT data with the SFT loss (labels -100 outside the completion
    tokens). Default: causal-lm for SFT data (quartz, or a file with messages or prompt + completion columns)."""
    chat_template: str | None = None
    """causal-lm: a Jinja chat-template file to render conversations with instead of the tokenizer's."""

    def validate(self) -> None:
        check(self.task is None or self.task in DIAGNOSE_TASKS, "task", self.task, ", ".join(DIAGNOSE_TASKS))
        check(self.chat_template is None or Path(self.chat_template).expanduser().is_file(), "chat_template",
              self.chat_template, "an existing Jinja template file")


def task_of(config: DiagnoseConfig) -> str:
    """`config.task`, or the task the data asks for (module docstring)."""
    if config.task is not None:
        return config.task
    from tunescope.data.sft import is_sft_source

    # a named classification asset or a hub id is classification unless --task causal-lm says otherwise
    return "causal-lm" if is_sft_source(config.data) else "classification"


def resolve_checkpoint(path: str) -> str:
    """A run directory means its final checkpoint; anything else is passed through to the model loader."""
    final = RunDir(Path(path)).final
    return str(final) if final.is_dir() else path


def _skeleton_source(name: str, task: str) -> str:
    """What preflight builds for `name`: for a causal LM, an adapter / SIFT-delta folder (an SFT run's final) stands
    for its base model, as tasks.causal_lm.load_lm_checkpoint loads it; the classification loader does that itself."""
    if task != "causal-lm":
        return name
    from tunescope.models.checkpoint_check import read_base_config
    from tunescope.models.load import checkpoint_base_source, resolve_model_source

    source = resolve_model_source(name)
    base = read_base_config(source) if Path(source).is_dir() else None
    return checkpoint_base_source(base["base_model_name_or_path"]) if base else name


def _other_model(name: str, task: str, loaded):
    """The `--against` model, loaded the way the task loads its own."""
    if task == "causal-lm":
        from tunescope.tasks.causal_lm import load_lm_checkpoint

        return load_lm_checkpoint(name)[0]
    from tunescope.models.load import load_classifier

    return load_classifier(name, loaded.data.num_labels, label_names=loaded.data.label_names)[0]


def diagnose_run(config: DiagnoseConfig, run_dir: str | Path, *, write_report: bool = True) -> dict:
    """Measure, select, optionally compare against a second checkpoint; write results.json (+ report.html)."""
    from tunescope.diagnostics.layerwise import (
        add_delta_cka,
        collect_hidden_states,
        diagnose,
    )
    from tunescope.tasks import load_task

    task = task_of(config)
    if config.chat_template and task != "causal-lm":
        raise UserError(f"bad value {config.chat_template!r} for chat_template: it renders SFT conversations, and "
                        f"this run diagnoses the {task} task; give --task causal-lm with SFT data, or drop it")

    def body(_rd: RunDir) -> dict:
        loaded = load_task(config, resolve_checkpoint(config.model), task=task)
        probe = draw_probe(config, loaded.tokenized["train"], loaded.tokenizer, collate=loaded.collator)
        found, capture = diagnose(loaded.model, probe, width=config.inflection_width,
                                  keep_hidden=config.against is not None, metrics=config.metrics)
        if task == "causal-lm":  # how many tokens the loss (and so every gradient metric) is taken over
            found["probe_loss_tokens"] = sum(int((b["labels"] != -100).sum()) for b in probe)
        if config.against:
            other = _other_model(resolve_checkpoint(config.against), task, loaded)
            add_delta_cka(found["layers"], capture.hidden_states(), collect_hidden_states(other, probe))
            found["against"] = config.against
        results = {"model": config.model, "data": config.data, "seed": config.seed, "task": task,
                   "diagnostics": found}
        if task == "causal-lm":
            results["preparation"] = loaded.preparation
        return results

    # Both models checked on weightless copies first: a bad --against fails before the data and --model load.
    against = resolve_checkpoint(config.against) if config.against else None
    preflight(config, model=_skeleton_source(resolve_checkpoint(config.model), task), task=task,
              checkpoints={"--against": _skeleton_source(against, task) if against else None})
    return run_recipe("diagnose", config, run_dir, body, write_report=write_report)
