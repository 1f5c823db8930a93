"""A metric defined entirely in test code, to show that one registration reaches every reader."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from tunescope.diagnostics.capture import PassContext, block_output, masked_token_rows
from tunescope.diagnostics.metrics import LAYER_METRICS, LayerMetric, LayerRecorder

TOY = "h_rms"


class ResidualRmsRecorder(LayerRecorder):
    """R_l = sqrt(mean over valid tokens t and features k of h_l[t, k]^2), h_l the output of block l."""

    def __init__(self, num_layers: int) -> None:
        self.sq = [0.0] * num_layers
        self.count = [0] * num_layers
        self.valid: torch.Tensor | None = None

    def set_batch(self, valid_tokens: torch.Tensor | None) -> None:
        self.valid = valid_tokens

    def attach(self, ctx: PassContext) -> None:
        for layer, block in enumerate(ctx.layout.blocks):
            ctx.hooks.forward(block, self._hook(layer))

    def _hook(self, layer: int):
        def on_forward(_module, _args, output):
            rows = masked_token_rows(block_output(output).detach(), self.valid).float()
            self.sq[layer] += float(rows.pow(2).sum())
            self.count[layer] += rows.numel()

        return on_forward

    def table(self) -> list[dict[str, float]]:
        return [{TOY: math.sqrt(s / c) if c else float("nan")} for s, c in zip(self.sq, self.count)]


TOY_METRIC = LayerMetric(TOY, label="residual stream RMS R_l", unit="a.u.", log_scale=True, bounds=(0.0, math.inf),
                         recorder=ResidualRmsRecorder, order=60,
                         description="R_l = sqrt(mean over valid tokens and features of h_l^2)")


@contextmanager
def registered(metric: LayerMetric = TOY_METRIC) -> Iterator[LayerMetric]:
    """Register `metric` for the duration of a test (the registry has no public removal: metrics are forever)."""
    LAYER_METRICS.register(metric.name, metric)
    try:
        yield metric
    finally:
        LAYER_METRICS._items.pop(metric.name, None)
