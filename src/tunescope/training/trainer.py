"""HF Trainer wiring: arguments from FinetuneConfig, metrics log, NaN guard, strategy save/load hooks.

Scale-out comes from the Trainer itself (accelerate: `accelerate launch -m tunescope finetune ...`
runs DDP/FSDP; on a machine without an accelerator, `torchrun --nproc_per_node N -m tunescope finetune ...`
runs DDP over gloo); tunescope adds no launcher of its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from tunescope.errors import TrainingDivergedError
from tunescope.io import append_jsonl
from tunescope.training.evaluate import classification_metrics


class MetricsLogCallback(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, eval metrics ...) to RUN_DIR/metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            append_jsonl(self.path, {"step": state.global_step, "epoch": state.epoch, **logs})


class DivergenceGuard(TrainerCallback):
    """Stops training with a clear error (exit 2) when the training loss becomes NaN or infinite."""

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the training loss became {loss} at step {state.global_step}; lower learning_rate "
                f"(now {self.learning_rate:g}) or check the data")


class StrategyTrainer(Trainer):
    """A Trainer that lets a strategy decide how its weights are saved and restored (e.g. SIFT's sparse delta)."""

    def __init__(self, *args, strategy=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.strategy = strategy

    def _save(self, output_dir: str | None = None, state_dict=None):
        if self.strategy is not None and self.strategy.saves_own_checkpoints:
            output_dir = output_dir or self.args.output_dir
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            self.strategy.save(self.model, Path(output_dir))
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            return
        super()._save(output_dir, state_dict)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if self.strategy is not None and self.strategy.saves_own_checkpoints:
            self.strategy.load(model or self.model, Path(resume_from_checkpoint))
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)


def _compute_metrics(pred) -> dict[str, float]:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    return classification_metrics(np.asarray(logits), np.asarray(pred.label_ids))


def _no_accelerator() -> bool:
    return not torch.accelerator.is_available()


def training_arguments(config, output_dir: Path, learning_rate: float, has_eval: bool = True) -> TrainingArguments:
    """TrainingArguments from a FinetuneConfig: epoch-wise eval, checkpoints each epoch (or save_steps)."""
    save = {"save_strategy": "steps", "save_steps": config.save_steps} if config.save_steps else \
        {"save_strategy": "epoch"}
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=float(config.warmup_ratio),  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=config.lr_scheduler,
        logging_steps=config.logging_steps,
        logging_nan_inf_filter=False,  # we want to see a NaN loss, not a smoothed-over average
        eval_strategy="epoch" if has_eval else "no",
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        label_names=["labels"],
        # Without an accelerator the Trainer must be told it runs on the CPU, or each process of a torchrun /
        # accelerate launch would train alone on all the data instead of joining a gloo process group.
        use_cpu=_no_accelerator(),
        **save,
    )


def build_trainer(model, tokenizer, tokenized: dict, collator, config, run_dir: Path, *, learning_rate: float,
                  strategy=None, optimizer=None, callbacks: list | None = None) -> StrategyTrainer:
    """A StrategyTrainer over tokenized["train"] evaluating on tokenized["validation"] each epoch."""
    args = training_arguments(config, run_dir / "checkpoints", learning_rate, has_eval="validation" in tokenized)
    return StrategyTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized.get("validation"),
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=_compute_metrics,
        optimizers=(optimizer, None),
        callbacks=[MetricsLogCallback(run_dir / "metrics.jsonl"), DivergenceGuard(learning_rate),
                   *(callbacks or [])],
        strategy=strategy,
    )
