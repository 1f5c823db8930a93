"""HF Trainer wiring: arguments from FinetuneConfig, metrics log, divergence guard, strategy save/load hooks.

Scale-out comes from the Trainer itself (accelerate: `accelerate launch -m tunescope finetune ...`
runs DDP/FSDP; on a machine without an accelerator, `torchrun --nproc_per_node N -m tunescope finetune ...`
runs DDP over gloo); tunescope adds no launcher of its own.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from transformers import (
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from tunescope.errors import TrainingDivergedError
from tunescope.io import append_jsonl, is_main_process, quiet
from tunescope.training import checkpoints as ckpt
from tunescope.training.evaluate import classification_metrics
from tunescope.training.launch import prepare_launch


class MetricsLogCallback(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, eval metrics ...) to RUN_DIR/metrics.jsonl."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            append_jsonl(self.path, {"step": state.global_step, "epoch": state.epoch, **logs})


# A step whose loss exceeds EXPLOSION_FACTOR x the starting loss is an explosion: a healthy run's per-step loss
# wanders around (and mostly below) where it started; it does not climb an order of magnitude and stay there.
EXPLOSION_FACTOR = 10.0
# ... and stay there: the run has diverged once EXPLOSION_PATIENCE optimizer steps in a row explode, or when it
# ends exploded. A spike that recovers is not divergence: LP-FT's first full steps after a confident linear probe
# jump from 0.07 to 50-80 nats and are back under the bar within 4 steps on the way to test accuracy 1.0
# (tests/contract, lp-ft and lp-lora on tiny Llama), while a run at a learning rate that is truly too high stays
# orders of magnitude up (1e5-1e6 nats at learning_rate=1e6) and never comes back.
EXPLOSION_PATIENCE = 10
# The starting loss = the mean loss of the first START_STEPS optimizer steps (one step alone is too noisy); an
# early step that already explodes is checked against the steps before it and left out of the mean.
START_STEPS = 3
# The starting loss is never taken below the chance-level cross-entropy of two classes, ln 2: a run that starts
# near zero (LP-FT after its probe, a resumed or already fine-tuned model) would otherwise be held to 10 x a tiny
# number; with the floor the bar is at least 10 x ln 2 = 6.9 nats, a mean probability of the right class < 0.1%.
MIN_START_LOSS = math.log(2)


def divergence_reason(loss: float, start: float | None, factor: float = EXPLOSION_FACTOR) -> str | None:
    """What one step's loss says: "non-finite" when it is NaN or +-inf; "explosion" when
    loss > factor * max(start, MIN_START_LOSS); None otherwise (`start`: the starting loss, None while unknown,
    i.e. only the non-finite rule applies)."""
    if not math.isfinite(loss):
        return "non-finite"
    if start is not None and loss > factor * max(start, MIN_START_LOSS):
        return "explosion"
    return None


class DivergenceGuard:
    """Stops training (TrainingDivergedError, exit 2) when an optimizer step's loss is NaN / inf (at once), or when
    the loss has exploded (divergence_reason) for EXPLOSION_PATIENCE steps in a row or at the last step.

    It sees every optimizer step (StrategyTrainer.training_step feeds it), not only the logged ones. On a resume
    the starting loss is measured again from the first resumed steps. Under torchrun each process checks its own
    share of the batch; when one process stops, the launcher stops the others.
    """

    def __init__(self, learning_rate: float, *, record_to: Path | None = None, factor: float = EXPLOSION_FACTOR,
                 patience: int = EXPLOSION_PATIENCE, start_steps: int = START_STEPS):
        self.learning_rate = learning_rate  # the configured (peak) learning rate, for the advice
        self.record_to = Path(record_to) if record_to is not None else None
        self.factor, self.patience, self.start_steps = factor, patience, start_steps
        self.first_losses: list[float] = []  # the non-exploded losses among the first start_steps steps
        self.steps_seen = 0
        self.streak = 0  # exploded steps in a row, up to the current one

    @property
    def start(self) -> float | None:
        """The starting loss: mean of first_losses; None before any step."""
        return sum(self.first_losses) / len(self.first_losses) if self.first_losses else None

    def observe(self, step: int, loss: float, learning_rate: float | None = None, *, last: bool = False) -> None:
        """Check optimizer step `step` (1-based; `last`: the run's final step) with mean loss `loss`, trained at
        `learning_rate`; raises TrainingDivergedError, after recording it in metrics.jsonl, when the run diverged."""
        self.steps_seen += 1
        reason = divergence_reason(loss, self.start, self.factor)
        if reason is None:
            self.streak = 0
            if self.steps_seen <= self.start_steps:
                self.first_losses.append(loss)
            return
        if reason == "explosion":
            self.streak += 1
            if self.streak < self.patience and not last:
                return
        message = self.message(step, loss, learning_rate, reason)
        if self.record_to is not None and is_main_process():
            # The last metrics.jsonl line says why the run has no results.json.
            append_jsonl(self.record_to, {"step": step, "event": "diverged", "reason": reason,
                                          "diverged_loss": loss if math.isfinite(loss) else str(loss),
                                          "learning_rate": learning_rate, "message": message})
        raise TrainingDivergedError(message)

    def message(self, step: int, loss: float, learning_rate: float | None, reason: str) -> str:
        """The one-line error: step, loss, learning rate, and what to do."""
        if reason == "non-finite":
            what = f"the loss became {loss}"
        else:
            run = f"{self.streak} steps in a row" if self.streak > 1 else "1 step"
            what = (f"the loss {loss:.4g} is over {self.factor:g}x its starting value {self.start:.4g} "
                    f"({run}{', to the end of training' if self.streak < self.patience else ''})")
        at = f"learning rate {learning_rate:.3g} at that step, " if learning_rate is not None else ""
        return (f"training diverged at step {step}: {what} ({at}configured learning_rate {self.learning_rate:g}); "
                f"lower learning_rate (e.g. learning_rate={self.learning_rate / 10:g}) or check the data and labels; "
                "no results were recorded")


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length-grouped order, drawn from a generator seeded with (seed, epoch) at every epoch.

    The stock LengthGroupedSampler draws its permutation from the global torch RNG when an epoch starts. A run
    resumed mid-epoch restores the RNG state of its checkpoint only after building that epoch's iterator, so it drew
    another permutation and skipped the first batches of the wrong order: a trial paused at a rung and the final
    run continuing it diverged from an uninterrupted run (test logits differed by 0.8 on a tiny model). Here the
    order is a function of (seed, epoch) alone, whatever happened before; the Trainer calls set_epoch.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return super().__iter__()


class StrategyTrainer(Trainer):
    """A Trainer that lets a strategy decide how its weights are saved and restored (e.g. SIFT's sparse delta),
    and that checks every optimizer step's loss with a DivergenceGuard."""

    def __init__(self, *args, strategy=None, divergence_guard: DivergenceGuard | None = None,
                 batch_mean_loss: bool = False, **kwargs):
        """batch_mean_loss: the model's loss is a mean over its batch that ignores `num_items_in_batch` (sequence
        classification); leave it False for token losses normalised by the item count (causal-LM SFT)."""
        super().__init__(*args, **kwargs)
        self.strategy = strategy
        self.divergence_guard = divergence_guard or DivergenceGuard(self.args.learning_rate)
        if batch_mean_loss:
            # A sequence-classification head returns CrossEntropyLoss(reduction="mean") over its batch and never
            # reads `num_items_in_batch`, but its forward takes **kwargs, so the Trainer takes it for a token loss
            # already divided by the global item count. It then (1) multiplies the loss by the number of processes
            # (average_tokens_across_devices: undoing DDP's gradient averaging, right only for a sum / global
            # count), so under torchrun with 2 processes the logged train / eval losses and the gradients were 2x,
            # and (2) skips the division by the gradient-accumulation steps (GA micro-batch means were summed).
            # Saying the model takes no loss kwargs makes the Trainer treat the loss as the per-batch mean it is:
            # no item count is gathered or passed, no world-size factor, and it divides by the accumulation steps;
            # DDP's averaging of the per-process gradients then gives the gradient of the global batch mean.
            self.model_accepts_loss_kwargs = False
        if quiet():  # with its bars off the Trainer prints every log dict to stdout instead; stdout is for results
            self.remove_callback(PrinterCallback)
        self._step_loss: torch.Tensor | None = None  # the current optimizer step's loss, summed over micro-batches
        self._staging_root: str | None = None  # set while _save_checkpoint writes into the staging folder
        if self.args.should_save:  # finish what a killed run left half-done: staging, trash, rotation
            ckpt.tidy_checkpoints(self.args.output_dir, self.args.save_total_limit)

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:  # see EpochSeededLengthGroupedSampler
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        prepare_launch(self)  # FSDP on CPU processes too, and exit 2 for launches that would quietly do less

    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is being saved the Trainer's own code writes it into the staging folder.
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """Atomic checkpoints: the Trainer writes checkpoint-N into checkpoints/.staging, which is renamed into
        place once complete (trainer_state.json written); only then are old checkpoints rotated away."""
        run_dir = super()._get_output_dir(trial)
        staging = Path(run_dir) / ckpt.STAGING_DIR
        # (tunescope sets no metric_for_best_model, so the Trainer's best-checkpoint path is never needed here.)
        self._staging_root = str(staging)
        try:
            super()._save_checkpoint(model, trial)  # its own rotation sees only the staging folder: a no-op
        finally:
            self._staging_root = None
        if self.args.world_size > 1:  # every process has written its RNG state into the staged folder
            self.accelerator.wait_for_everyone()
        if self.args.should_save:
            name = f"{ckpt.PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            final = Path(run_dir) / name
            ckpt.publish_checkpoint(staging / name, final)
            ckpt.rotate_checkpoints(run_dir, self.args.save_total_limit, final, self.state.best_model_checkpoint)

    def _run_epoch(self, *args, **kwargs):
        # Resumed from a checkpoint taken at max_steps in mid-epoch (a run killed after its last checkpoint), the
        # Trainer would take one more optimizer step before its stop check; that run has nothing left to train.
        if 0 < self.state.max_steps <= self.state.global_step:
            self.control.should_training_stop = True
            return None
        return super()._run_epoch(*args, **kwargs)

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

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        """The Trainer's step, then the divergence check once per optimizer step.

        The micro-batch losses the Trainer returns are each already divided by the accumulation steps, so their
        sum is the optimizer step's mean loss. It is read to the host once per optimizer step, on the last
        micro-batch (accelerate's sync_gradients), before the optimizer applies that step: a scalar the step has
        computed anyway, no extra collective, no extra pass.
        """
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._step_loss = loss if self._step_loss is None else self._step_loss + loss
        if self.accelerator.sync_gradients:
            step_loss, self._step_loss = float(self._step_loss), None
            step = self.state.global_step + 1
            try:
                self.divergence_guard.observe(step, step_loss, self._get_learning_rate(),
                                              last=0 < self.state.max_steps <= step)
            except TrainingDivergedError:
                self._close_progress_bars()
                raise
        return loss

    def _close_progress_bars(self) -> None:
        # An open tqdm bar has no newline yet: the one-line error would be glued to its end.
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                callback.training_bar.close()
                callback.training_bar = None


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
        disable_tqdm=quiet() or None,  # None: the Trainer's own default (bars unless logging is quieter than warn)
        eval_strategy="epoch" if has_eval else "no",
        save_total_limit=config.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        report_to=list(getattr(config, "report_to", ["none"])),
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if getattr(config, "group_by_length", False) else "random",
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
    from tunescope.diagnostics.features import length_sorted

    args = training_arguments(config, run_dir / "checkpoints", learning_rate, has_eval="validation" in tokenized)
    validation = tokenized.get("validation")
    return StrategyTrainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        # The epoch-end evaluation only averages over examples, so it may see them length-sorted: each batch is then
        # padded to its own longest example (about half the token work on reviews at max_length 64).
        eval_dataset=None if validation is None else length_sorted(validation)[0],
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=_compute_metrics,
        optimizers=(optimizer, None),
        callbacks=[MetricsLogCallback(run_dir / "metrics.jsonl"), *(callbacks or [])],
        strategy=strategy,
        divergence_guard=DivergenceGuard(learning_rate, record_to=run_dir / "metrics.jsonl"),
        batch_mean_loss=True,  # classification: see StrategyTrainer.__init__
    )
