"""The SFT recipe: causal-LM task -> strategy -> trl's SFTTrainer -> evaluation -> results.json + report.

`sft(config, run_dir)` is what `tunescope sft` calls. Every strategy comes from the same registry as in
`finetune` (full, lora, lora-inflection, sift); the ones that fit a classification head (head, lp-ft, lp-lora) are
refused: a causal LM has no such head. lora-inflection diagnoses the pre-trained model on the SFT loss (the labels
are -100 outside the completion tokens) before it picks its layers; SIFT picks its top-k entries from the gradient
of the same loss; GO noise is the `go-noise` training add-on, the forgetting check (perplexity and next-token
accuracy of held-out plain text before and after training) the `retention` one, the per-layer diagnostics on the
SFT loss (the table before / after with `diagnose`, every registered metric every `diagnose_every` steps during
training) the `diagnostics` one. `resume=True` continues an interrupted run from its newest complete checkpoint,
as `finetune` does. What is measured: tasks/causal_lm.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import tunescope.tasks.causal_lm  # registers the causal-lm task
import tunescope.training.diagnostics_addon  # registers the diagnostics add-on
import tunescope.training.noise  # registers the go-noise add-on
import tunescope.training.retention  # noqa: F401  (registers the retention add-on)
from tunescope.diagnostics.options import ProbeOptions, draw_probe
from tunescope.errors import UserError
from tunescope.experiments.sft_config import (  # re-exported
    SFTConfig,
    refuse_head_strategy,
)
from tunescope.io import is_main_process
from tunescope.strategies import STRATEGIES
from tunescope.strategies.base import (
    StrategyContext,
    check_options,
    count_parameters,
    learning_rate_for,
)
from tunescope.tasks import TASKS
from tunescope.training.addons import RunState, TrainingAddon, enabled_addons

# The training add-ons of an SFT run, in the order their stages run.
SFT_ADDONS = ("diagnostics", "retention", "go-noise")

log = logging.getLogger(__name__)


def sft(config: SFTConfig, run_dir: str | Path, *, resume: bool = False, write_report: bool = True,
        extra_addons: Sequence[TrainingAddon] = (), overwrite: bool = False) -> dict:
    """Supervised fine-tuning of `config.model` on `config.data` with `config.strategy`; returns the results.

    Writes RUN_DIR/config.yaml, metrics.jsonl, checkpoints/ (Trainer checkpoints + final/: a safetensors model,
    a PEFT adapter folder or a SIFT delta), results.json and report.html. With `resume=True`, training continues
    from the newest complete checkpoint in RUN_DIR/checkpoints (from the start when the run was stopped before its
    first one) and ends with the weights of an uninterrupted run; a non-empty RUN_DIR is otherwise refused unless
    `overwrite=True`, which clears it first. `extra_addons`: training add-ons of your own, run after SFT_ADDONS.
    """
    from tunescope.experiments.recipe import run_recipe
    from tunescope.experiments.rundir import RunDir
    from tunescope.training.checkpoints import checkpoint_step

    # tunescope runs offline by design: trl's usage ping stays off unless the user turned it on.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    rd = RunDir(Path(run_dir))
    checkpoint = _resume_point(rd) if resume else None
    strategy = STRATEGIES.get(config.strategy)
    refuse_head_strategy(config.strategy)
    check_options(strategy, config, "sft")
    addons = [*enabled_addons(SFT_ADDONS, config), *extra_addons]

    def body(rd: RunDir) -> dict:
        if is_main_process():  # the log holds what this run did: nothing past the step it continues from
            if checkpoint is None:
                rd.metrics_file.unlink(missing_ok=True)
            else:
                rd.trim_metrics(checkpoint_step(Path(checkpoint)))
        return _train_and_evaluate(config, rd, strategy, addons, checkpoint)

    return run_recipe("sft", config, rd, body, write_report=write_report, resume=resume, overwrite=overwrite)


def _resume_point(rd) -> str | None:
    """The checkpoint `--resume` continues from: the newest complete one (a half-written newest one falls back to
    the previous); None = from the start (stopped before its first checkpoint). UserError when nothing is there."""
    from tunescope.training.checkpoints import latest_complete_checkpoint

    found = latest_complete_checkpoint(rd.checkpoints)
    if found is None and rd.saved_config() is None:
        raise UserError(f"nothing to resume in {str(rd.path)!r}: no config.yaml and no complete checkpoint")
    log.info("resuming from %s", found or "the start (stopped before its first checkpoint)")
    return str(found) if found is not None else None


def _diagnose_on_sft_loss(model, loaded, config) -> dict:
    """The per-layer diagnosis (and inflection band) of the pre-trained model on probe batches of the training
    split, its loss masked to the completion tokens; lora-inflection adapts the layers it selects. The batches
    are the ones the `diagnostics` add-on draws (draw_probe through the task's collator)."""
    from tunescope.diagnostics.layerwise import diagnose

    probe = draw_probe(config, loaded.tokenized["train"], loaded.tokenizer, collate=loaded.collator)
    found, _ = diagnose(model, probe, width=config.inflection_width)
    return found


def _rng_untouched():
    """Whatever runs inside leaves torch's global random state as it found it (CPU, and the current GPU)."""
    import torch

    return torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else [])


def _by_epoch(log_history: list[dict]) -> list[dict]:
    """trl's validation loss / mean token accuracy at each evaluation (means over batches, as trl logs them)."""
    return [{"epoch": round(h["epoch"], 4), "loss": h["eval_loss"],
             "mean_token_accuracy": h.get("eval_mean_token_accuracy")} for h in log_history if "eval_loss" in h]


def _train_and_evaluate(config: SFTConfig, rd, strategy, addons: list, checkpoint: str | None = None) -> dict:
    """The body of the recipe: load the task, prepare the strategy, train with SFTTrainer, evaluate, save."""
    from tunescope.tasks.causal_lm import load_lm_checkpoint, token_evaluation
    from tunescope.training.memory import reset_peak_rss, training_memory
    from tunescope.training.sft_trainer import build_sft_trainer, no_kv_cache

    task = TASKS.get("causal-lm")
    loaded = task.load(config)
    model, tokenizer, tokenized = loaded.model, loaded.tokenizer, loaded.tokenized
    learning_rate = learning_rate_for(strategy, config)
    results: dict = {"task": task.name, "model": config.model, "data": config.data, "strategy": config.strategy,
                     "seed": config.seed, "data_format": loaded.data.format,
                     "data_sizes": {split: len(ds) for split, ds in tokenized.items()},
                     "preparation": loaded.preparation}
    if config.eval_before:
        with _rng_untouched():  # a DataLoader draws a seed; LoRA's init must not depend on --eval-before
            results["eval_before"] = task.evaluate(model, loaded, "test", config.eval_batch_size).metrics
    if ProbeOptions in strategy.options and config.layers is None:
        results["diagnostics"] = _diagnose_on_sft_loss(model, loaded, config)
    ctx = StrategyContext(config=config, tokenizer=tokenizer, data=loaded.data, tokenized=tokenized,
                          collator=loaded.collator, results=results, out_dir=rd.path, learning_rate=learning_rate,
                          task=task)
    model = strategy.prepare(model, ctx)
    run = RunState(config=config, out_dir=rd.path, model=model, tokenizer=tokenizer, data=loaded.data,
                   tokenized=tokenized, collator=loaded.collator, results=results,
                   base_model_factory=lambda: load_lm_checkpoint(config.model)[0], strategy=strategy, task=task,
                   addons=addons)
    for addon in addons:
        addon.before_train(run)
    callbacks = [*strategy.callbacks(model, ctx), *(cb for addon in addons for cb in addon.callbacks(run))]
    trainer = build_sft_trainer(model, tokenizer, tokenized, loaded.collator, config, rd.path,
                                learning_rate=learning_rate, strategy=strategy,
                                optimizer=strategy.create_optimizer(model, ctx), callbacks=callbacks)
    run.trainer = trainer
    peak_reset = reset_peak_rss()  # the peak RSS of training, not of the evaluations before it
    with no_kv_cache(model):
        trainer.train(resume_from_checkpoint=checkpoint)
    model = run.model = trainer.model
    results["memory"] = training_memory(trainer.optimizer, model, reset_before_training=peak_reset)

    trainable, total = count_parameters(model)
    results.setdefault("trainable_params", trainable)
    results["total_params"] = total
    results["learning_rate"] = learning_rate
    test = task.evaluate(model, loaded, "test", config.eval_batch_size)
    validation = token_evaluation(model, loaded, "validation", config.eval_batch_size).metrics
    results["eval"] = {**test.metrics,
                       **{f"validation_{k}": validation[k] for k in ("loss", "perplexity", "mean_token_accuracy")},
                       "validation_by_epoch": _by_epoch(trainer.state.log_history)}
    trainer.save_model(str(rd.final))
    for addon in addons:
        addon.after_train(run)
    return results
