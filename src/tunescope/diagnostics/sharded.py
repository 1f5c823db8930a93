"""Per-layer diagnostics and top-k of a model sharded by FSDP2: numbers of the FULL tensors, from their shards.

Under FSDP2 (`fully_shard`, e.g. `accelerate launch --use_fsdp --fsdp_version 2`) every parameter, and after
backward every gradient, is a DTensor: each process holds one shard. Reading it as a plain tensor gives the
shard's numbers, not the tensor's: `float(g.pow(2).sum())` of a Shard(0) gradient is the local partial sum (the
sum's placement is Partial). Per-layer gradient norms under sharding are an open request upstream
(transformers #31033, DeepSpeed #4555); here they are computed without gathering any tensor:

- squared norm of a sharded tensor T: ||T||_F^2 = sum over processes p of ||T_p||_F^2 (T_p the local shard), one
  all-reduce (sum) of a vector of per-layer partial sums over each mesh dimension T is sharded on (a Replicate
  dimension holds copies and is not summed; a Partial placement is reduced first);
- G_l = sqrt(sum over the parameters theta of block l of ||dL/dtheta||_F^2) and G_l / ||theta_l||_F, the
  `param_grad_norm` / `param_grad_rel` of diagnostics.gradients, from those squared norms;
- top-k |S| of a Shard(0) tensor S (SIFT's mask): each process takes the top-k of its own shard (flat indices
  offset by the shards before it); the global top-k is the top-k of those k * world candidates, since an entry
  among the k largest of S is among the k largest of its own shard.

`sharded_layer_diagnostics` is `layerwise.layer_diagnostics` for such a model: `torch.autograd.grad` cannot be
used (the forward runs on parameters FSDP all-gathers, not on the sharded ones), so it runs `loss.backward()`,
lets FSDP reduce-scatter the gradients into the shards (the mean over processes; with the same probe batches on
every process, the gradient of the probe loss), reads them and puts the training step's `.grad` back. Every
process must call it with the same probe batches (its all-gathers are collectives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, Replicate, Shard

from tunescope.diagnostics.gradients import block_parameters
from tunescope.diagnostics.layerwise import (
    LayerCapture,
    _diagnostic_mode,
    _model_inputs,
    layer_diagnostics,
)
from tunescope.errors import UserError
from tunescope.models.layers import model_layout


def is_sharded(model: nn.Module) -> bool:
    """True when any parameter of `model` is a DTensor (FSDP2 / tensor parallel)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def _without_partial(t: DTensor) -> DTensor:
    """A DTensor whose local values are actual entries of the tensor (a Partial placement is reduced first)."""
    if not any(p.is_partial() for p in t.placements):
        return t
    return t.redistribute(placements=[Replicate() if p.is_partial() else p for p in t.placements])


def grouped_squared_sums(tensors: Sequence[torch.Tensor | None], groups: Sequence[int], num_groups: int,
                         ) -> list[float]:
    """s_i = sum over the tensors t of group i of ||t||_F^2 (None counts 0), of the FULL tensors also when t is a
    DTensor shard (formula in the module docstring; one all-reduce per mesh dimension, in float64). Every process
    must call it with the same sequence of tensors."""
    plain = torch.zeros(num_groups, dtype=torch.float64)
    sharded: dict[tuple[int, tuple[int, ...]], tuple[object, torch.Tensor]] = {}  # (mesh, shard dims) -> partial sums
    for t, i in zip(tensors, groups):
        if t is None:
            continue
        if not isinstance(t, DTensor):
            plain[i] += t.detach().double().pow(2).sum().cpu()
            continue
        t = _without_partial(t.detach())
        dims = tuple(d for d, p in enumerate(t.placements) if p.is_shard())
        key = (id(t.device_mesh), dims)
        if key not in sharded:
            sharded[key] = (t.device_mesh, torch.zeros(num_groups, dtype=torch.float64, device=t.to_local().device))
        sharded[key][1][i] += t.to_local().double().pow(2).sum()
    for (_, dims), (mesh, partial) in sharded.items():  # insertion order: the same on every process
        for d in dims:
            dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=mesh.get_group(d))
        plain += partial.cpu()
    return plain.tolist()


def param_grad_rows(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None], groups: Sequence[int],
                    num_layers: int) -> list[dict[str, float]]:
    """Per block {"param_grad_norm": G_l, "param_grad_rel": G_l / ||theta_l||_F} of the full tensors (the keys and
    formulas of diagnostics.gradients.param_grad_table)."""
    g = [math.sqrt(s) for s in grouped_squared_sums(grads, groups, num_layers)]
    w = [math.sqrt(s) for s in grouped_squared_sums([p.detach() for p in params], groups, num_layers)]
    return [{"param_grad_norm": gi, "param_grad_rel": gi / wi if wi > 0 else float("nan")} for gi, wi in zip(g, w)]


def sharded_layer_diagnostics(model: nn.Module, probe_batches: Sequence[dict], *,
                              metrics: Sequence[str] | None = None) -> list[dict]:
    """The per-layer table of a sharded model (see the module docstring); the same rows as layer_diagnostics.

    Parameter-gradient metrics other than the built-in `param_grad_norm` read no gradients here (their recorders
    would see shards).
    """
    if not probe_batches:
        raise UserError("bad value 0 for the number of probe batches: expected at least 1")
    layout = model_layout(model)
    capture = LayerCapture(layout, metrics)
    params, groups = block_parameters(model, layout.block_prefixes)
    device = next(model.parameters()).device
    everything = list(model.parameters())
    saved = [p.grad for p in everything]  # the training step's gradients (None right after the optimizer step)
    for p in everything:
        p.grad = None
    try:
        with _diagnostic_mode(model, params), capture.instrument(model):
            for batch in probe_batches:
                inputs = _model_inputs(batch, device)
                if "labels" not in inputs and capture.needs_backward:
                    raise UserError("bad probe batch without 'labels': gradient diagnostics need a loss")
                capture.set_batch(inputs.get("attention_mask"))
                with torch.set_grad_enabled(capture.needs_backward):
                    out = model(**inputs)
                if capture.needs_backward:
                    # FSDP reduce-scatters into the shards' .grad, summing over the probe batches like autograd.grad
                    (out.loss / len(probe_batches)).backward()
                del out
            rows = None
            if capture.reads_param_grads:
                rows = param_grad_rows(params, [p.grad for p in params], groups, layout.num_layers)
    finally:
        for p, g in zip(everything, saved):
            p.grad = g
    return capture.table(rows)


def layer_table(model: nn.Module, probe_batches: Sequence[dict], *, metrics: Sequence[str] | None = None,
                ) -> list[dict]:
    """The per-layer rows of `model` on the probe batches: sharded_layer_diagnostics for a sharded model, else
    layerwise.layer_diagnostics."""
    if is_sharded(model):
        return sharded_layer_diagnostics(model, probe_batches, metrics=metrics)
    return layer_diagnostics(model, probe_batches, metrics=metrics)[0]


def sharded_topk_indices(score: DTensor, k: int) -> torch.Tensor:
    """Flat indices (int64, sorted ascending, shape [k]) of the k largest |score| entries of the FULL tensor,
    the same on every process (formula in the module docstring). A Shard(0) tensor on a 1-D mesh is never
    gathered (k * world candidates travel); any other layout is gathered whole (`full_tensor`) first."""
    score = _without_partial(score.detach())
    numel = score.numel()
    if not 0 < k <= numel:
        raise ValueError(f"k must be in [1, {numel}], got {k}")
    mesh = score.device_mesh
    if mesh.ndim != 1 or score.placements[0] != Shard(0):
        full = score.full_tensor().reshape(-1).abs().float()
        return torch.topk(full, k, sorted=False).indices.sort().values.to(torch.int64)
    group, world = mesh.get_group(0), mesh.size(0)
    local = score.to_local().reshape(-1).abs().float()
    # Shard(0) keeps whole rows in order, so a shard is one contiguous run of the flat tensor: offset = the
    # entries of the shards before it.
    sizes = [torch.zeros(1, dtype=torch.int64, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.numel()], dtype=torch.int64, device=local.device), group=group)
    offset = sum(int(s) for s in sizes[:mesh.get_local_rank(0)])
    m = min(k, local.numel())
    values = torch.full((k,), -1.0, device=local.device)  # |score| >= 0: a padding slot never wins
    indices = torch.full((k,), -1, dtype=torch.int64, device=local.device)
    if m:
        top = torch.topk(local, m, sorted=False)
        values[:m], indices[:m] = top.values, top.indices + offset
    all_values = [torch.empty_like(values) for _ in range(world)]
    all_indices = [torch.empty_like(indices) for _ in range(world)]
    dist.all_gather(all_values, values, group=group)
    dist.all_gather(all_indices, indices, group=group)
    candidates, where = torch.cat(all_values), torch.cat(all_indices)
    return where[torch.topk(candidates, k, sorted=False).indices].sort().values
