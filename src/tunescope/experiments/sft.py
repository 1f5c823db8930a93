"""The SFT recipe: causal-LM task -> strategy -> trl's SFTTrainer -> evaluation -> results.json + report.

`sft(config, run_dir)` is what `tunescope sft` calls. Every strategy comes from the same registry as in
`finetune` (full, lora, lora-inflection, sift); the ones that fit a classification head (head, lp-ft, lp-lora) are
refused: a causal LM has no such head. lora-inflection diagnoses the pre-trained model on the SFT loss (the labels
are -100 outside the completion tokens) before it picks its layers; SIFT picks its top-k entries from the gradient
of the same loss; GO noise is the `go-noise` training add-on, the forgetting check (perplexity of held-out plain
text before and after training) the `retention` one. What is measured: tasks/causal_lm.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tunescope.tasks.causal_lm  # noqa: F401  (registers the causal-lm task)
import tunescope.training.retention  # noqa: F401  (registers the retention add-on)
from tunescope.config import check
from tunescope.diagnostics.options import ProbeOptions
from tunescope.errors import UserError
from tunescope.io import is_main_process
from tunescope.strategies import STRATEGIES
from tunescope.strategies.base import StrategyContext, check_options, count_parameters, learning_rate_for
from tunescope.strategies.lora import LoraOptions
from tunescope.strategies.sift.config import SiftOptions
from tunescope.tasks import TASKS
from tunescope.tasks.options import TaskOptions
from tunescope.training.addons import RunState, TrainingAddon, enabled_addons
from tunescope.training.noise import NoiseOptions
from tunescope.training.options import TrainingOptions

# The training add-ons of an SFT run, in the order their stages run.
SFT_ADDONS = ("retention", "go-noise")

log = logging.getLogger(__name__)


@dataclass
class SFTConfig(NoiseOptions, SiftOptions, ProbeOptions, LoraOptions, TrainingOptions, TaskOptions):
    """Everything that defines an SFT run (saved as the run's config.yaml).

    Composed from the option groups (task, Trainer, LoRA, SIFT, probe batches, GO noise); model, data and
    max_length keep their declaration in TaskOptions and only get SFT defaults here.
    """

    model: str = "smollm2-135m"
    """Model: a decoder (causal LM): a named asset (smollm2-135m), a local folder, or a hub id."""
    data: str = "quartz"
    """SFT data: a named asset (quartz) or a local jsonl/json/csv/parquet file with a `messages` column,
    `prompt` + `completion` columns, or a text column (optional `choices`: candidate answers)."""
    max_length: int = 256
    """Maximum tokens per sequence: a longer completion is cut; an example whose prompt fills it is dropped
    (counted in results.json)."""
    strategy: str = "lora"
    """Fine-tuning strategy: full, lora, lora-inflection or sift (the classification-head ones are refused)."""
    completion_only_loss: bool = True
    """Loss on the completion / assistant tokens only (false: on every token of each sequence)."""
    chat_template: str | None = None
    """A Jinja chat-template file to use instead of the tokenizer's (e.g. one with {% generation %} markers)."""
    packing: bool = False
    """Pack the training sequences into max_length-token rows (trl's best-fit packing, no padding)."""
    answer_max_new_tokens: int = 8
    """Greedy-generation budget (tokens) of an answer, for task accuracy on data with choices."""
    eval_before: bool = False
    """Also evaluate the pre-trained model on the test split (results.json `eval_before`)."""
    retention_docs: int = 0
    """Forgetting check: perplexity of this many held-out documents of retention_data before and after training
    (results.json `retention`; 0: off)."""
    retention_data: str = "news_text"
    """Plain-text corpus of the forgetting check: a named corpus (news_text) or a local csv/jsonl/txt file."""

    def validate(self) -> None:
        refuse_head_strategy(self.strategy)
        check(self.retention_docs >= 0, "retention_docs", self.retention_docs, "an integer >= 0 (0: off)")
        check(self.answer_max_new_tokens >= 1, "answer_max_new_tokens", self.answer_max_new_tokens,
              "a positive integer")
        check(self.chat_template is None or Path(self.chat_template).expanduser().is_file(), "chat_template",
              self.chat_template, "an existing Jinja template file")
        check(self.label_column is None, "label_column", self.label_column,
              "nothing: SFT data has no labels (formats: messages, prompt + completion, text)")


def refuse_head_strategy(name: str) -> None:
    """UserError for an unknown strategy (did-you-mean) or one that fits a classification head."""
    strategy = STRATEGIES.get(name)
    if strategy.needs_head:
        usable = ", ".join(n for n in STRATEGIES.names() if not STRATEGIES.get(n).needs_head)
        raise UserError(f"bad value {name!r} for strategy: it fits a classification head, and a causal LM has none "
                        f"(SFT trains the language model itself); use one of {usable}")


def sft(config: SFTConfig, run_dir: str | Path, *, write_report: bool = True,
        extra_addons: Sequence[TrainingAddon] = (), overwrite: bool = False) -> dict:
    """Supervised fine-tuning of `config.model` on `config.data` with `config.strategy`; returns the results.

    Writes RUN_DIR/config.yaml, metrics.jsonl, checkpoints/ (Trainer checkpoints + final/: a safetensors model,
    a PEFT adapter folder or a SIFT delta), results.json and report.html. `extra_addons`: training add-ons of your
    own, run after SFT_ADDONS. A non-empty RUN_DIR is refused unless `overwrite=True`, which clears it first.
    """
    from tunescope.experiments.recipe import run_recipe
    from tunescope.experiments.rundir import RunDir

    # tunescope runs offline by design: trl's usage ping stays off unless the user turned it on.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    strategy = STRATEGIES.get(config.strategy)
    refuse_head_strategy(config.strategy)
    check_options(strategy, config, "sft")
    addons = [*enabled_addons(SFT_ADDONS, config), *extra_addons]

    def body(rd: RunDir) -> dict:
        if is_main_process():
            rd.metrics_file.unlink(missing_ok=True)
        return _train_and_evaluate(config, rd, strategy, addons)

    return run_recipe("sft", config, RunDir(Path(run_dir)), body, write_report=write_report, overwrite=overwrite)


def _diagnose_on_sft_loss(model, loaded, config) -> dict:
    """The per-layer diagnosis (and inflection band) of the pre-trained model on probe batches of the training
    split, its loss masked to the completion tokens; lora-inflection adapts the layers it selects."""
    from tunescope.data.sft_prepare import sft_probe_batches
    from tunescope.diagnostics.layerwise import diagnose

    probe = sft_probe_batches(loaded.tokenized["train"], loaded.collator, batch_size=config.probe_batch_size,
                              num_batches=config.probe_batches, seed=config.seed)
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


def _train_and_evaluate(config: SFTConfig, rd, strategy, addons: list) -> dict:
    """The body of the recipe: load the task, prepare the strategy, train with SFTTrainer, evaluate, save."""
    from tunescope.tasks.causal_lm import load_lm_checkpoint, token_evaluation
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
    with no_kv_cache(model):
        trainer.train()
    model = run.model = trainer.model

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
