"""Per-block gradient norms: activation gradients via tensor hooks on block outputs, parameter gradients.

Formulas (METHODS.md section 1):
- activation gradient norm [ours]: A_l = mean over valid (non-padding) tokens t of ||dL/dh_l[t]||_2, with h_l the
  residual stream after block l;
- parameter gradient norm [paper]: G_l = ||grad of L w.r.t. all parameters of block l||_2 (the square root of
  the sum of squared entries over every parameter tensor of the block), and the relative norm
  G_l / ||theta_l||_2 with ||theta_l||_2 the norm of the block's weights.
Both are registered per-layer metrics (diagnostics.metrics): `act_grad_norm` records during the pass (tensor
hooks), `param_grad_norm` (+ `param_grad_rel`) is computed after it from the summed parameter gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tunescope.diagnostics.capture import HookSet, PassContext, block_output
from tunescope.diagnostics.metrics import Column, LayerRecorder, layer_metric

_INF = float("inf")


@layer_metric("act_grad_norm", label="activation grad norm A_l", log_scale=True, bounds=(0.0, _INF),
              needs_backward=True, order=30,
              description="A_l = mean over valid tokens t of ||dL/dh_l[t]||_2, h_l the residual stream after block l")
class ActivationGradRecorder(LayerRecorder):
    """A_l = (sum over valid tokens t of ||dL/dh_l[t]||_2) / (number of valid tokens), accumulated over batches.

    Tensor hooks on the block outputs (registered by forward hooks) fire during backward / autograd.grad;
    `set_batch` gives the valid tokens of the next forward.
    """

    def __init__(self, num_layers: int) -> None:
        self.sums = [0.0] * num_layers
        self.counts = [0.0] * num_layers
        self.valid_tokens: torch.Tensor | None = None

    def attach(self, ctx: PassContext) -> None:
        self.attach_blocks(ctx.hooks, ctx.layout.blocks)

    def attach_blocks(self, hook_set: HookSet, blocks: Sequence[nn.Module]) -> None:
        """Instrument `blocks` directly (outside a LayerCapture)."""
        for layer, block in enumerate(blocks):
            hook_set.forward(block, self._forward_hook(layer, hook_set))

    def set_batch(self, valid_tokens: torch.Tensor | None) -> None:
        self.valid_tokens = valid_tokens

    def _forward_hook(self, layer: int, hook_set: HookSet):
        def on_forward(_module, _args, output):
            h = block_output(output)
            valid = self.valid_tokens  # bound now: the gradient arrives after the next set_batch may have run
            hook_set.tensor(h, lambda grad: self._add(layer, grad, valid))

        return on_forward

    def _add(self, layer: int, grad: torch.Tensor, valid: torch.Tensor | None) -> None:
        """grad: [B, T, d] = dL/dh_l."""
        with torch.no_grad():
            norms = grad.float().norm(dim=-1)  # [B, T]
            if valid is not None and valid.shape == norms.shape:
                norms = norms[valid.to(norms.device, torch.bool)]
            self.sums[layer] += float(norms.sum())
            self.counts[layer] += norms.numel()

    def table(self) -> list[dict[str, float]]:
        """{"act_grad_norm": A_l} per block (NaN where no gradient reached the block)."""
        return [{"act_grad_norm": s / c if c else float("nan")} for s, c in zip(self.sums, self.counts)]


def grouped_norms(grads: Sequence[torch.Tensor | None], groups: Sequence[int], num_layers: int) -> list[float]:
    """sqrt(sum of squared entries) of the tensors of each group (group index per tensor; None grads count 0)."""
    sq = [0.0] * num_layers
    for g, i in zip(grads, groups):
        if g is not None:
            sq[i] += float(g.detach().float().pow(2).sum())
    return [math.sqrt(s) for s in sq]


def block_parameters(model: nn.Module, block_prefixes: Sequence[str]) -> tuple[list[nn.Parameter], list[int]]:
    """All parameters of the blocks (each once) and the block index of each."""
    params, groups, seen = [], [], set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        for i, prefix in enumerate(block_prefixes):
            if name.startswith(prefix):
                params.append(p)
                groups.append(i)
                seen.add(id(p))
                break
    return params, groups


def param_grad_table(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None], groups: Sequence[int],
                     num_layers: int) -> list[dict[str, float]]:
    """Per block: {"param_grad_norm": G_l, "param_grad_rel": G_l / ||theta_l||_2}."""
    g = grouped_norms(grads, groups, num_layers)
    w = grouped_norms([p.detach() for p in params], groups, num_layers)
    return [{"param_grad_norm": gi, "param_grad_rel": gi / wi if wi > 0 else float("nan")} for gi, wi in zip(g, w)]


def param_grad_table_from_model(model: nn.Module, block_prefixes: Sequence[str]) -> list[dict[str, float]]:
    """The same table read from `.grad` after an ordinary `loss.backward()` (frozen parameters count 0)."""
    params, groups = block_parameters(model, block_prefixes)
    return param_grad_table(params, [p.grad for p in params], groups, len(block_prefixes))


@layer_metric("param_grad_norm", label="parameter grad norm G_l", log_scale=True, bounds=(0.0, _INF),
              needs_backward=True, order=40,
              description="G_l = ||dL/dtheta_l||_2 over all parameters of block l (L = mean probe loss)",
              extra_columns=[Column("param_grad_rel", "relative grad norm G_l / ||theta_l||", log_scale=True,
                                    bounds=(0.0, _INF), description="G_l / ||theta_l||_2")])
class ParamGradRecorder(LayerRecorder):
    """G_l and G_l / ||theta_l||_2 from the parameter gradients handed over after the pass (param_grad_table)."""

    reads_param_grads = True

    def __init__(self, num_layers: int) -> None:
        self.num_layers = num_layers
        self.rows: list[dict[str, float]] | None = None

    def add_param_grads(self, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None],
                        groups: Sequence[int]) -> None:
        self.rows = param_grad_table(params, grads, groups, self.num_layers)

    def table(self) -> list[dict[str, float]]:
        nan = float("nan")
        return self.rows or [{"param_grad_norm": nan, "param_grad_rel": nan} for _ in range(self.num_layers)]
