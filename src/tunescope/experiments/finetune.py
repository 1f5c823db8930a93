"""The fine-tuning recipe: data -> model -> strategy -> HF Trainer -> evaluation -> results.json + report.

`finetune(config, run_dir)` is what `tunescope finetune` and `tunescope run` call. Later capabilities
attach to it through experiments.hooks (before_train / after_train), not by editing this file.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunescope.config import check, save_config
from tunescope.errors import UserError
from tunescope.experiments.hooks import RunState, run_hooks
from tunescope.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run (saved as the run's config.yaml)."""

    model: str = "minilm-l6"
    """Model: a named asset (minilm-l6, smollm2-135m), a local folder, or a hub id."""
    data: str = "rotten_tomatoes"
    """Data: a named asset (rotten_tomatoes, tweets_sentiment), a local csv/tsv/jsonl/json/parquet file, or a hub id."""
    text_column: str | None = None
    """Text column of a local or hub data set (default: text / sentence / review / content)."""
    label_column: str | None = None
    """Label column of a local or hub data set (default: label / labels / category / sentiment)."""
    strategy: str = "lora"
    """Fine-tuning strategy (see `tunescope finetune --help` for the registered ones)."""
    epochs: float = 2.0
    """Training epochs (fractions allowed, e.g. 0.25)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs)."""
    batch_size: int = 32
    """Training batch size per device."""
    eval_batch_size: int = 128
    """Evaluation batch size."""
    learning_rate: float | None = None
    """Peak learning rate (default: the strategy's own default)."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW)."""
    warmup_ratio: float = 0.06
    """Fraction of steps with linear warm-up."""
    lr_scheduler: str = "linear"
    """Learning-rate schedule (a transformers SchedulerType: linear, cosine, constant ...)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches accumulated per optimizer step."""
    max_length: int = 64
    """Maximum tokens per example (longer texts are truncated)."""
    limit: int | None = None
    """Cap on examples per split (train, validation, test)."""
    seed: int = 0
    """Seed for splits, initialisation, data order and dropout."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator alpha (update scaled by alpha / r)."""
    lora_dropout: float = 0.1
    """Dropout on the LoRA input."""
    lora_targets: list[str] | None = None
    """Module names LoRA adapts (default: the architecture's attention projections)."""
    layers: list[int] | None = None
    """Blocks (0-based) that get LoRA adapters (default: all)."""
    logging_steps: int = 10
    """Log the training loss every N optimizer steps."""
    save_steps: int | None = None
    """Checkpoint every N steps (default: at the end of every epoch)."""
    save_total_limit: int = 2
    """How many checkpoints to keep (the newest)."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own code (off unless you trust the source)."""
    # layer diagnostics and inflection layers (docs/diagnostics.md)
    diagnose: bool = False
    """Record per-layer diagnostics of the pre-trained model before training and Delta-CKA after (on in `run`)."""
    probe_batches: int = 2
    """Probe batches (drawn from the training split) for the per-layer diagnostics."""
    probe_batch_size: int = 16
    """Examples per probe batch."""
    inflection_width: int | None = None
    """Width w of the inflection band (default ceil(num_layers / 4))."""
    # linear probe, NTK, calibration, feature change (docs/lpft.md)
    lp_cs: int = 10
    """Linear probe (head, lp-ft, lp-lora): number of L2 strengths C tried by LogisticRegressionCV (log-spaced)."""
    lp_cv: int = 5
    """Linear probe: cross-validation folds for choosing C."""
    ntk_samples: int = 0
    """Before training, compute the eNTK split P + F and the FT ratio on this many training examples (0: off)."""
    calibration_bins: int = 15
    """Equal-width confidence bins for ECE / MCE and the reliability diagram."""
    feature_change: bool = True
    """After training, compare pre-trained and fine-tuned features phi(x) on the test split (cosine, L2)."""
    # SIFT (docs/sift.md)
    sift_rate: float = 0.01
    """SIFT: fraction of each target tensor that trains (k = floor(rate * numel) + 1 entries per tensor)."""
    sift_targets: list[str] | None = None
    """SIFT: module-name patterns of the sparsely tuned weights (suffixes or globs; default attention q,k,v,o)."""
    sift_selection_batches: int = 1
    """SIFT: micro-batches whose summed gradient chooses the top-k mask (paper: 1)."""
    sift_mask: str = "top"
    """SIFT: `top` (top-k |gradient|, the method) or `random` (the ablation: k random entries)."""
    # GO training (docs/landscape.md)
    noise_sigma: float = 0.0
    """GO training: loss at theta + eps, eps ~ N(0, sigma^2 I) drawn once per optimizer step, gradient applied to theta (0: off; paper 0.01)."""

    def __post_init__(self):
        check(self.epochs > 0, "epochs", self.epochs, "a positive number")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")
        check(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "a positive integer")
        check(self.learning_rate is None or self.learning_rate > 0, "learning_rate", self.learning_rate,
              "a positive number")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps",
              self.gradient_accumulation_steps, "a positive integer")
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        check(self.limit is None or self.limit >= 1, "limit", self.limit, "a positive integer")
        check(self.lora_rank >= 1, "lora_rank", self.lora_rank, "a positive integer")
        check(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "a positive number")
        check(0 <= self.lora_dropout < 1, "lora_dropout", self.lora_dropout, "a number in [0, 1)")
        check(self.logging_steps >= 1, "logging_steps", self.logging_steps, "a positive integer")
        check(self.save_steps is None or self.save_steps >= 1, "save_steps", self.save_steps, "a positive integer")
        check(self.noise_sigma >= 0, "noise_sigma", self.noise_sigma, "a number >= 0 (0: GO training off)")
        check(self.save_total_limit >= 1, "save_total_limit", self.save_total_limit, "a positive integer")
        from transformers import SchedulerType

        schedulers = [s.value for s in SchedulerType]
        check(self.lr_scheduler in schedulers, "lr_scheduler", self.lr_scheduler, "one of " + ", ".join(schedulers))
        from tunescope.strategies import STRATEGIES

        STRATEGIES.get(self.strategy)  # unknown strategy -> exit 2 with "did you mean"


def _accuracy_by_epoch(log_history: list[dict]) -> list[dict]:
    return [{"epoch": round(h["epoch"], 4), "accuracy": h["eval_accuracy"], "nll": h.get("eval_nll")}
            for h in log_history if "eval_accuracy" in h]


def _save_logits(run_dir: Path, logits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    arrays = {f"{split}_{kind}": arr for split, (lg, lb) in logits.items()
              for kind, arr in (("logits", lg), ("labels", lb))}
    atomic_write(run_dir / "logits.npz", lambda p: np.savez(open(p, "wb"), **arrays))


def finetune(config: FinetuneConfig, run_dir: str | Path, *, resume: bool = False,
             write_report: bool = True) -> dict:
    """Fine-tune `config.model` on `config.data` with `config.strategy`; returns the results dict.

    Writes RUN_DIR/config.yaml, metrics.jsonl, checkpoints/ (Trainer checkpoints + final/),
    logits.npz (validation and test logits), results.json and report.html, each atomically.
    With `resume=True`, training continues from the newest checkpoint in RUN_DIR/checkpoints.
    """
    from transformers.trainer_utils import get_last_checkpoint

    from tunescope.data.tokenize import collator
    from tunescope.experiments.task import load_task
    from tunescope.strategies import STRATEGIES, StrategyContext
    from tunescope.strategies.base import count_parameters
    from tunescope.training.evaluate import classification_metrics, predict_logits
    from tunescope.training.trainer import build_trainer, is_main_process

    run_dir = Path(run_dir)
    start = time.perf_counter()
    checkpoint = None
    if resume:
        ckpt_dir = run_dir / "checkpoints"
        checkpoint = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        if checkpoint is None:
            raise UserError(f"nothing to resume in {str(run_dir)!r}: no checkpoint-* folder under checkpoints/")
        log.info("resuming from %s", checkpoint)
    main = is_main_process()  # under torchrun / accelerate every process trains; only process 0 writes files
    run_dir.mkdir(parents=True, exist_ok=True)
    if main:
        save_config(config, run_dir / "config.yaml")
        if not resume:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)

    task = load_task(config)
    data, model, tokenizer, tokenized = task.data, task.model, task.tokenizer, task.tokenized
    pristine = copy.deepcopy(model)  # the pre-trained model, for feature change / NTK / head-norm analyses
    collate = collator(tokenizer)
    strategy = STRATEGIES.get(config.strategy)
    results: dict = {"model": config.model, "data": config.data, "strategy": config.strategy, "seed": config.seed,
                     "data_sizes": data.sizes(), "label_names": data.label_names}
    ctx = StrategyContext(config=config, tokenizer=tokenizer, data=data, tokenized=tokenized, collator=collate,
                          results=results, out_dir=run_dir)
    model = strategy.prepare(model, ctx)
    run = RunState(config=config, out_dir=run_dir, model=model, tokenizer=tokenizer, data=data, tokenized=tokenized,
                   collator=collate, results=results, base_model_factory=lambda: copy.deepcopy(pristine),
                   strategy=strategy)
    run_hooks("before_train", run)

    learning_rate = config.learning_rate or strategy.default_learning_rate
    optimizer = strategy.create_optimizer(model, ctx) if hasattr(strategy, "create_optimizer") else None
    callbacks = strategy.callbacks(model, ctx) if hasattr(strategy, "callbacks") else []
    callbacks = [*callbacks, *run.extras.get("trainer_callbacks", [])]  # hooks may add Trainer callbacks
    trainer = build_trainer(model, tokenizer, tokenized, collate, config, run_dir, learning_rate=learning_rate,
                            strategy=strategy, optimizer=optimizer, callbacks=callbacks)
    run.trainer = trainer
    if getattr(strategy, "trains", True):  # `head` (LP alone) fits its head in prepare(); no gradient steps
        trainer.train(resume_from_checkpoint=checkpoint)
    model = run.model = trainer.model

    trainable, total = count_parameters(model)
    results.setdefault("trainable_params", trainable)
    results["total_params"] = total
    results["learning_rate"] = learning_rate
    logits = {split: predict_logits(model, tokenized[split], collate, config.eval_batch_size, desc=f"eval {split}")
              for split in ("validation", "test")}
    run.extras["logits"] = logits
    if main:
        _save_logits(run_dir, logits)
    results["eval"] = {**classification_metrics(*logits["test"]),
                       "validation_accuracy": classification_metrics(*logits["validation"])["accuracy"],
                       "accuracy_by_epoch": _accuracy_by_epoch(trainer.state.log_history)}
    trainer.save_model(str(run_dir / "checkpoints" / "final"))
    run_hooks("after_train", run)
    results["wall_seconds"] = round(time.perf_counter() - start, 2)
    if not main:
        return results
    atomic_write_json(run_dir / "results.json", results)
    if write_report:
        from tunescope.report.html import build_report

        build_report(run_dir)
    return results
