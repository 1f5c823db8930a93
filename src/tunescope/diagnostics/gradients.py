"""Per-block gradient norms: activation gradients via tensor hooks on block outputs, parameter gradients.

Formulas (METHODS.md section 1):
- activation gradient norm [ours]: A_l = mean over valid (non-padding) tokens t of ||dL/dh_l[t]||_2, with h_l the
  residual stream after block l;
- parameter gradient norm [paper]: G_l = ||grad of L w.r.t. all parameters of block l||_2 (the square root of
  the sum of squared entries over every parameter tensor of the block), and the relative norm
  G_l / ||theta_l||_2 with ||theta_l||_2 the norm of the block's weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from tunescope.diagnostics.capture import HookSet, block_output


class ActivationGradRecorder:
    """Accumulates sum_t ||dL/dh_l[t]||_2 and the number of valid tokens per block, over probe batches.

    Attach with `attach(hook_set, blocks)`; set `valid_tokens` ([B, T] bool) before each forward.
    """

    def __init__(self, num_layers: int) -> None:
        self.sums = [0.0] * num_layers
        self.counts = [0.0] * num_layers
        self.valid_tokens: torch.Tensor | None = None

    def attach(self, hook_set: HookSet, blocks: Sequence[nn.Module]) -> None:
        for layer, block in enumerate(blocks):
            hook_set.forward(block, self._forward_hook(layer, hook_set))

    def _forward_hook(self, layer: int, hook_set: HookSet):
        def on_forward(_module, _args, output):
            h = block_output(output)
            valid = self.valid_tokens
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

    def table(self) -> list[float]:
        """A_l per block (NaN where no gradient reached the block)."""
        return [s / c if c else float("nan") for s, c in zip(self.sums, self.counts)]


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
