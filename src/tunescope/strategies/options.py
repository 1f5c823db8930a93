"""The strategies' option groups and names, importable without torch, peft or sklearn.

The CLI builds every command's flags and help from these (`tunescope finetune --help` must not load the
strategies), so this module imports only the standard library and tunescope.config. The strategy modules
re-export their group: `from tunescope.strategies.lora import LoraOptions` still works. SIFT's group lives in
strategies/sift/config.py, which is light too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check

# The registered strategies' names, in registry order, for help text built without importing the strategies;
# tests/unit/test_cli_imports.py checks that this equals STRATEGIES.names().
STRATEGY_NAMES: tuple[str, ...] = ("full", "head", "lora", "lora-inflection", "lp-ft", "lp-lora", "sift")


@dataclass
class LoraOptions(Options):
    """The LoRA fields of a command's config (lora, lora-inflection, lp-lora)."""

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

    def validate(self) -> None:
        check(self.lora_rank >= 1, "lora_rank", self.lora_rank, "a positive integer")
        check(self.lora_alpha > 0, "lora_alpha", self.lora_alpha, "a positive number")
        check(0 <= self.lora_dropout < 1, "lora_dropout", self.lora_dropout, "a number in [0, 1)")
        check(self.layers is None or (len(self.layers) > 0 and min(self.layers) >= 0), "layers", self.layers,
              "block indices >= 0 (checked against the model's block count when it is loaded)")
        check(self.lora_targets is None or len(self.lora_targets) > 0, "lora_targets", self.lora_targets,
              "at least one module name")


@dataclass
class LinearProbeOptions(Options):
    """The linear-probe fields of a command's config (head, lp-ft, lp-lora)."""

    lp_cs: int = 10
    """Linear probe (head, lp-ft, lp-lora): number of L2 strengths C tried by LogisticRegressionCV (log-spaced)."""
    lp_cv: int = 5
    """Linear probe: cross-validation folds for choosing C."""

    def validate(self) -> None:
        check(self.lp_cs >= 1, "lp_cs", self.lp_cs, "a positive integer")
        check(self.lp_cv >= 2, "lp_cv", self.lp_cv, "an integer >= 2")
