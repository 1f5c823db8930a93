"""`lp-ft` and `lp-lora` (Tomihari & Sato, NeurIPS 2024): linear probing first, then fine-tuning.

Stage 1 (LP): fit the head (V, b) on frozen features, install it (strategies/linear_probe.py).
Stage 2: `lp-ft` trains every parameter (as `full`); `lp-lora` wraps the model with the `lora` strategy's
adapters (peft copies the LP head into its trainable `modules_to_save` copy). Starting FT from a well-fitted,
large-norm head keeps the cross-entropy gradients d_i = e_y - softmax(f(x_i)) small, so features change less.
"""

from __future__ import annotations

from torch import nn

from tunescope.strategies.base import STRATEGIES, StrategyBase, StrategyContext
from tunescope.strategies.full import FullFineTuning
from tunescope.strategies.linear_probe import LinearProbeOptions, lp_stage
from tunescope.strategies.lora import LoRA, LoraOptions


class LPFT(StrategyBase):
    name = "lp-ft"
    default_learning_rate = FullFineTuning.default_learning_rate
    options = (LinearProbeOptions,)
    needs_head = True

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        lp_stage(model, ctx)
        return FullFineTuning().prepare(model, ctx)


class LPLoRA(StrategyBase):
    name = "lp-lora"
    default_learning_rate = LoRA.default_learning_rate
    options = (LinearProbeOptions, LoraOptions)
    needs_head = True

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        lp_stage(model, ctx)
        return LoRA().prepare(model, ctx)


STRATEGIES.register("lp-ft", LPFT())
STRATEGIES.register("lp-lora", LPLoRA())
