"""The fine-tuning recipe: task -> model -> strategy -> HF Trainer -> evaluation -> results.json + report.

`finetune(config, run_dir)` is what `tunescope finetune` and `tunescope run` call. Optional behaviours are
training add-ons (training/addons.py) named in FINETUNE_ADDONS; each decides from the config whether it runs.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import tunescope.experiments.analyses_lpft  # noqa: F401  (registers the ntk / calibration / head add-ons)
import tunescope.training.diagnostics_addon  # noqa: F401  (registers the diagnostics add-on)
import tunescope.training.noise  # noqa: F401  (registers the go-noise add-on)
from tunescope.errors import UserError
from tunescope.experiments.finetune_config import FinetuneConfig  # re-exported
from tunescope.io import atomic_write, is_main_process
from tunescope.strategies import STRATEGIES
from tunescope.strategies.base import StrategyContext, check_options, learning_rate_for
from tunescope.tasks import TASKS
from tunescope.training.addons import AddonBase, RunState, TrainingAddon, enabled_addons
from tunescope.training.launch import refuse_lone_cpu_launch

# The training add-ons of a fine-tuning run, in the order their stages run.
FINETUNE_ADDONS = ("diagnostics", "ntk", "calibration", "head-and-features", "go-noise")

log = logging.getLogger(__name__)


def _accuracy_by_epoch(log_history: list[dict]) -> list[dict]:
    return [{"epoch": round(h["epoch"], 4), "accuracy": h["eval_accuracy"], "nll": h.get("eval_nll")}
            for h in log_history if "eval_accuracy" in h]


def _save_logits(path: Path, logits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    arrays = {f"{split}_{kind}": arr for split, (lg, lb) in logits.items()
              for kind, arr in (("logits", lg), ("labels", lb))}
    atomic_write(path, lambda p: np.savez(open(p, "wb"), **arrays))


def finetune(config: FinetuneConfig, run_dir: str | Path, *, resume: bool = False, write_report: bool = True,
             extra_addons: Sequence[TrainingAddon] = (), overwrite: bool = False) -> FinetuneResults:
    """Fine-tune `config.model` on `config.data` with `config.strategy`; returns the results dict (a
    FinetuneResults: also `.model` and `.trainer`).

    Writes RUN_DIR/config.yaml, metrics.jsonl, checkpoints/ (Trainer checkpoints + final/),
    logits.npz (validation and test logits), results.json and report.html, each atomically.
    With `resume=True`, training continues from the newest complete checkpoint in RUN_DIR/checkpoints (from the
    start when the run was stopped before its first one); a non-empty RUN_DIR is otherwise refused unless
    `overwrite=True`, which clears it first.
    `extra_addons`: training add-ons of your own (training.addons.AddonBase), run after FINETUNE_ADDONS.
    """
    from tunescope.experiments.preflight import preflight
    from tunescope.experiments.recipe import run_recipe
    from tunescope.experiments.rundir import RunDir
    from tunescope.training.checkpoints import (
        checkpoint_step,
        latest_complete_checkpoint,
    )

    refuse_lone_cpu_launch()  # before anything loads (the Trainer checks again, for every other recipe)
    rd = RunDir(Path(run_dir))
    checkpoint = None
    if resume:
        found = latest_complete_checkpoint(rd.checkpoints)  # a half-written newest one falls back to the previous
        if found is None and rd.saved_config() is None:
            raise UserError(f"nothing to resume in {str(rd.path)!r}: no config.yaml and no complete checkpoint")
        checkpoint = str(found) if found is not None else None
        log.info("resuming from %s", checkpoint or "the start (stopped before its first checkpoint)")
    strategy = STRATEGIES.get(config.strategy)
    check_options(strategy, config, "finetune")
    preflight(config)  # model-dependent options (LoRA layers / targets, SIFT targets) before any data or weights load
    addons = [*enabled_addons(FINETUNE_ADDONS, config), *extra_addons]

    keep = KeepRun()  # the trained model and Trainer, handed back beside the results

    def body(rd: RunDir) -> dict:
        if is_main_process():  # the log holds what this run did: nothing past the step it continues from
            if checkpoint is None:
                rd.metrics_file.unlink(missing_ok=True)
            else:
                rd.trim_metrics(checkpoint_step(Path(checkpoint)))
        return _train_and_evaluate(config, rd, strategy, [*addons, keep], checkpoint)

    results = run_recipe("finetune", config, rd, body, write_report=write_report, resume=resume, overwrite=overwrite)
    return FinetuneResults(results, model=keep.model, trainer=keep.trainer)


class KeepRun(AddonBase):
    """The last add-on of every run: keeps the trained model and the Trainer for `FinetuneResults`."""

    name = "keep-run"
    model = None
    trainer = None

    def after_train(self, run: RunState) -> None:
        self.model, self.trainer = run.model, run.trainer


class FinetuneResults(dict):
    """The results dict (as written to results.json), plus `.model` (the trained model, e.g. a PeftModel) and
    `.trainer` (the HF Trainer) for notebooks: `r = finetune(...); r["eval"]["accuracy"]; r.model`."""

    def __init__(self, results: dict, *, model=None, trainer=None):
        super().__init__(results)
        self.model, self.trainer = model, trainer


def _train_and_evaluate(config: FinetuneConfig, rd, strategy, addons: list, checkpoint: str | None) -> dict:
    """The body of the recipe: load the task, prepare the strategy, train, evaluate, run the add-ons."""
    from tunescope.strategies.base import count_parameters
    from tunescope.training.trainer import build_trainer

    task = TASKS.get("classification")
    loaded = task.load(config)
    data, model, tokenizer, tokenized, collate = (loaded.data, loaded.model, loaded.tokenizer, loaded.tokenized,
                                                  loaded.collator)
    pristine = copy.deepcopy(model)  # the pre-trained model, for feature change / NTK / head-norm analyses
    learning_rate = learning_rate_for(strategy, config)
    results: dict = {"model": config.model, "data": config.data, "strategy": config.strategy, "seed": config.seed,
                     "data_sizes": data.sizes(), "label_names": data.label_names}
    ctx = StrategyContext(config=config, tokenizer=tokenizer, data=data, tokenized=tokenized, collator=collate,
                          results=results, out_dir=rd.path, learning_rate=learning_rate, task=task)
    model = strategy.prepare(model, ctx)
    run = RunState(config=config, out_dir=rd.path, model=model, tokenizer=tokenizer, data=data, tokenized=tokenized,
                   collator=collate, results=results, base_model_factory=lambda: copy.deepcopy(pristine),
                   strategy=strategy, task=task, addons=addons)
    for addon in addons:
        addon.before_train(run)

    callbacks = [*strategy.callbacks(model, ctx), *(cb for addon in addons for cb in addon.callbacks(run))]
    trainer = build_trainer(model, tokenizer, tokenized, collate, config, rd.path, learning_rate=learning_rate,
                            strategy=strategy, optimizer=strategy.create_optimizer(model, ctx), callbacks=callbacks)
    run.trainer = trainer
    if strategy.trains:  # `head` (LP alone) fits its head in prepare(); no gradient steps
        trainer.train(resume_from_checkpoint=checkpoint)
    model = run.model = trainer.model

    trainable, total = count_parameters(model)
    results.setdefault("trainable_params", trainable)
    results["total_params"] = total
    results["learning_rate"] = learning_rate
    evals = {split: task.evaluate(model, loaded, split, config.eval_batch_size) for split in ("validation", "test")}
    logits = {split: (e.arrays["logits"], e.arrays["labels"]) for split, e in evals.items()}
    run.extras["logits"] = logits
    if is_main_process():
        _save_logits(rd.logits_file, logits)
    results["eval"] = {"split": "test", **evals["test"].metrics, "validation_accuracy": evals["validation"].metrics["accuracy"],
                       "accuracy_by_epoch": _accuracy_by_epoch(trainer.state.log_history)}
    # The score beside the bar it must clear (majority class), and a warning when the model collapsed to one class.
    checks = task.sanity_checks(loaded, evals["test"])
    results["baseline"] = checks["baseline"]
    results.setdefault("warnings", []).extend(checks["warnings"])
    for warning in checks["warnings"]:
        log.warning("%s", warning["message"])
    trainer.save_model(str(rd.final))
    for addon in addons:
        addon.after_train(run)
    return results
