"""Trainer settings shared by every training command, declared once (they become TrainingArguments), and the
GO-noise field (training/noise.py re-exports NoiseOptions).

Light on purpose (stdlib and tunescope.config only; validation imports what it needs): the CLI builds every
command's flags and help from these classes without loading torch or transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunescope.config import Options, check


@dataclass
class TrainingOptions(Options):
    """Epochs, batch sizes, optimiser and schedule, logging and checkpointing of one HF Trainer run."""

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
    logging_steps: int = 10
    """Log the training loss every N optimizer steps."""
    save_steps: int | None = None
    """Checkpoint every N steps (default: at the end of every epoch)."""
    save_total_limit: int = 2
    """How many checkpoints to keep (the newest)."""
    group_by_length: bool = False
    """Batch training examples of similar length together (transformers' seeded LengthGroupedSampler): less
    padding, so faster steps when lengths vary; the batches then differ from a plain shuffled order."""
    report_to: list[str] = field(default_factory=lambda: ["none"])
    """Where the Trainer also logs: none, or any installed integration the Trainer supports (tensorboard, wandb, mlflow, trackio, ...)."""

    def validate(self) -> None:
        check(self.epochs > 0, "epochs", self.epochs, "a positive number")
        check(self.max_steps == -1 or self.max_steps >= 1, "max_steps", self.max_steps,
              "a positive integer, or -1 for all epochs")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")
        check(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "a positive integer")
        check(self.learning_rate is None or self.learning_rate > 0, "learning_rate", self.learning_rate,
              "a positive number")
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps",
              self.gradient_accumulation_steps, "a positive integer")
        check(self.logging_steps >= 1, "logging_steps", self.logging_steps, "a positive integer")
        check(self.save_steps is None or self.save_steps >= 1, "save_steps", self.save_steps, "a positive integer")
        check(self.save_total_limit >= 1, "save_total_limit", self.save_total_limit, "a positive integer")
        from transformers import SchedulerType

        schedulers = [s.value for s in SchedulerType]
        check(self.lr_scheduler in schedulers, "lr_scheduler", self.lr_scheduler, "one of " + ", ".join(schedulers))
        self._check_report_to()

    def _check_report_to(self) -> None:
        """Known integration names, installed; `none` alone (the Trainer reads "none" as no reporting)."""
        from transformers.integrations import get_available_reporting_integrations
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        names = [n.strip() for n in self.report_to if n.strip()] or ["none"]
        if names == ["none"]:
            self.report_to = names
            return
        installed = get_available_reporting_integrations()
        for name in names:
            check(name in INTEGRATION_TO_CALLBACK, "report_to", name,
                  "none or one of " + ", ".join(sorted(INTEGRATION_TO_CALLBACK)))
            check(name in installed, "report_to", name,
                  f"an installed integration (installed: {', '.join(installed) or 'none'}; pip install {name})")
        self.report_to = names


@dataclass
class NoiseOptions(Options):
    """The GO-training field of a training command's config."""

    noise_sigma: float = 0.0
    """GO training: loss at theta + eps, eps ~ N(0, sigma^2 I) drawn once per optimizer step, gradient applied to theta (0: off; paper 0.01)."""

    def validate(self) -> None:
        check(self.noise_sigma >= 0, "noise_sigma", self.noise_sigma, "a number >= 0 (0: GO training off)")
