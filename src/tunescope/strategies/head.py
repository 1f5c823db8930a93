"""`head`: linear probing alone (LP). The head (V, b) is fitted on frozen features by cross-validated
L2 logistic regression (strategies/linear_probe.py) and installed; no gradient training follows.

`trains = False` tells the fine-tuning recipe to skip the Trainer loop; evaluation, calibration, head norm
and the rest of the analyses run as for every other strategy.
"""

from __future__ import annotations

from torch import nn

from tunescope.strategies.base import (
    STRATEGIES,
    StrategyBase,
    StrategyContext,
    freeze_all,
)
from tunescope.strategies.linear_probe import LinearProbeOptions, lp_stage


class LinearProbe(StrategyBase):
    name = "head"
    default_learning_rate = 1e-3  # unused: nothing trains by gradient
    options = (LinearProbeOptions,)
    trains = False
    needs_head = True

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        lp_stage(model, ctx)
        freeze_all(model)
        ctx.results["trainable_params"] = sum(p.numel() for p in _head_params(model))
        return model


def _head_params(model: nn.Module):
    from tunescope.diagnostics.features import head_linear

    return list(head_linear(model).parameters())


STRATEGIES.register("head", LinearProbe())
