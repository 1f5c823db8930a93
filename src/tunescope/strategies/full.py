"""`full`: every parameter trains (the usual fine-tuning baseline)."""

from __future__ import annotations

from torch import nn

from tunescope.strategies.base import STRATEGIES, StrategyBase, StrategyContext


class FullFineTuning(StrategyBase):
    name = "full"
    default_learning_rate = 5e-5

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


STRATEGIES.register("full", FullFineTuning())
