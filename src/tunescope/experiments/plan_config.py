"""The config of `tunescope plan` and `tunescope run` (light: the CLI builds their flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.experiments.finetune_config import FinetuneConfig
from tunescope.planning.options import PlanOptions


@dataclass
class PlanConfig(PlanOptions, FinetuneConfig):
    """The settings every candidate starts from (a FinetuneConfig: model, data, epochs, batch size, LoRA rank,
    SIFT rate, ...) plus the plan's own (budgets, mode, trials). Also the config of `tunescope run`."""

    group_by_length: bool = True
    """Batch training examples of similar length together (less padding: the plan and its final run train faster;
    `--no-group-by-length` for a plain shuffled order)."""
