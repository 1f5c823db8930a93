"""Parameter scopes and the three kinds of direction delta of METHODS.md section 4.

A scope is the set of parameters a direction moves ("all", a block range, only a run's adapters or
only the trainable / sparse entries). A direction is one tensor per scope parameter, same shape, so
`perturb.perturbed` can apply it. Sizes: d = number of scalar entries in the scope (entries outside a
sparse mask count as out of scope and stay zero).

- random (most-case): delta ~ N(0, I) raw, regenerable from (seed, direction index, parameter name);
  ||delta||_2 ~ sqrt(d). Option `tensor` normalisation rescales each tensor's slice to the norm of the
  weight tensor it perturbs (Li et al. 2018 filter normalisation at tensor granularity).
- worst-case: projected gradient ascent on the loss L(theta + a delta) over the sphere
  ||delta||_2 = sqrt(d) (the norm of a typical N(0, I) sample).
- sft: delta = (theta_sft - theta_0) * sqrt(d) / ||theta_sft - theta_0||_2.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from tunescope.errors import UserError

SCOPES_HELP = "all | body (all but the head) | layers:A-B (0-based blocks, inclusive) | adapters | trainable"
NORMALIZATIONS = ("none", "tensor")
_PEFT_NAME = re.compile(r"^base_model\.model\.|\.base_layer(?=\.)")


@dataclass
class Scope:
    """The parameters a direction moves. masks[i] (bool, shape of params[i]) limits it to some entries."""

    names: list[str]
    params: list[nn.Parameter]
    masks: list[torch.Tensor | None]

    @property
    def dim(self) -> int:
        """d: number of scalar entries the directions may move."""
        return sum(int(m.sum()) if m is not None else p.numel() for p, m in zip(self.params, self.masks, strict=True))

    def apply_masks(self, direction: list[torch.Tensor]) -> list[torch.Tensor]:
        """Zero every entry outside the scope (in place) and return the direction."""
        for d, m in zip(direction, self.masks, strict=True):
            if m is not None:
                d.mul_(m.to(d.dtype))
        return direction


def canonical_name(name: str) -> str:
    """Parameter name without peft's wrapping (`base_model.model.` prefix, `.base_layer`)."""
    return _PEFT_NAME.sub("", name)


def select_scope(model: nn.Module, scope: str = "all",
                 masks: dict[str, torch.Tensor] | None = None) -> Scope:
    """The parameters named by `scope` (see SCOPES_HELP); `masks` (name -> bool tensor) restricts entries.

    Tied parameters appear once (named_parameters de-duplicates them).
    """
    from tunescope.models.layers import block_index_of, model_layout

    named = list(model.named_parameters())
    if scope == "all":
        chosen = named
    elif scope == "body":
        from tunescope.models.layers import head_parameter_names

        head = set(head_parameter_names(model))
        chosen = [(n, p) for n, p in named if n not in head]
    elif scope.startswith("layers:"):
        lo, hi = _parse_range(scope[len("layers:"):], model_layout(model).num_layers)
        layout = model_layout(model)
        chosen = [(n, p) for n, p in named if (i := block_index_of(n, layout)) is not None and lo <= i <= hi]
    elif scope == "adapters":
        chosen = [(n, p) for n, p in named if "lora_" in n]
        if not chosen:
            raise UserError("bad value 'adapters' for --scope: this model has no LoRA adapter parameters; "
                            f"expected one of {SCOPES_HELP}")
    elif scope == "trainable":
        chosen = [(n, p) for n, p in named if p.requires_grad]
    else:
        raise UserError(f"bad value {scope!r} for --scope: expected {SCOPES_HELP}")
    by_canon = {canonical_name(k): v for k, v in (masks or {}).items()}
    if by_canon:
        # Sparse scope (e.g. a SIFT run): only the tensors with a mask, only their masked entries.
        chosen = [(n, p) for n, p in chosen if canonical_name(n) in by_canon]
        if not chosen:
            raise UserError("bad value for the sparse mask: none of its tensors is in the scope")
    if not chosen:
        raise UserError(f"bad value {scope!r} for --scope: it selects no parameters")
    mask_list = [by_canon[canonical_name(n)].to(torch.bool).reshape(p.shape) if by_canon else None
                 for n, p in chosen]
    return Scope([n for n, _ in chosen], [p for _, p in chosen], mask_list)


def _parse_range(text: str, num_layers: int) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise UserError(f"bad value 'layers:{text}' for --scope: expected layers:A-B with 0-based block indices")
    if not 0 <= lo_i <= hi_i < num_layers:
        raise UserError(f"bad value 'layers:{text}' for --scope: expected 0 <= A <= B < {num_layers}")
    return lo_i, hi_i


def global_norm(tensors: Iterable[torch.Tensor]) -> float:
    """||delta||_2 over all tensors (float64 accumulation)."""
    return math.sqrt(sum(float(t.detach().double().pow(2).sum()) for t in tensors))


def _tensor_seed(seed: int, index: int, name: str) -> int:
    """A stable 63-bit seed per (seed, direction index, canonical parameter name)."""
    h = hashlib.sha256(f"{seed}/{index}/{canonical_name(name)}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def random_direction(scope: Scope, seed: int, index: int, normalization: str = "none") -> list[torch.Tensor]:
    """Most-case direction: delta ~ N(0, I) over the scope, regenerable per tensor from (seed, index, name).

    normalization "none": raw, so E||delta||^2 = d. "tensor": delta_t <- delta_t * ||theta_t|| / ||delta_t||
    for each tensor t (zero for tensors whose weights are all zero, e.g. a LoRA B at init).
    """
    if normalization not in NORMALIZATIONS:
        raise UserError(f"bad value {normalization!r} for --normalization: expected one of {', '.join(NORMALIZATIONS)}")
    out = []
    for name, p, m in zip(scope.names, scope.params, scope.masks, strict=True):
        g = torch.Generator().manual_seed(_tensor_seed(seed, index, name))
        d = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.device)
        if m is not None:
            d.mul_(m.to(d.dtype))
        if normalization == "tensor":
            w = p.detach().float() if m is None else p.detach().float() * m
            dn = d.norm()
            d = d * (w.norm() / dn) if dn > 0 else d
        out.append(d)
    return out


def rescale(direction: list[torch.Tensor], norm: float) -> list[torch.Tensor]:
    """delta * norm / ||delta||_2 (the projection onto the sphere of radius `norm`)."""
    n = global_norm(direction)
    if n == 0:
        raise UserError("the direction is zero on this scope (e.g. the fine-tuned model equals the base there)")
    return [d * (norm / n) for d in direction]


def _base_diffs(scope: Scope, base_params: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], int]:
    """theta - theta_0 per scope tensor (zero where the base lacks it), and how many tensors matched."""
    base = {canonical_name(k): v for k, v in base_params.items()}
    diff, matched = [], 0
    for name, p, m in zip(scope.names, scope.params, scope.masks, strict=True):
        b = base.get(canonical_name(name))
        if b is None or tuple(b.shape) != tuple(p.shape):
            diff.append(torch.zeros(p.shape, dtype=torch.float32, device=p.device))
            continue
        matched += 1
        d = p.detach().float() - b.detach().float().to(p.device)
        diff.append(d * m if m is not None else d)
    if matched == 0:
        raise UserError("bad value for --base: none of its parameters matches the scope of the model "
                        "(same names and shapes expected)")
    return diff, matched


def weight_distance(scope: Scope, base_params: dict[str, torch.Tensor]) -> float:
    """||theta_sft - theta_0||_2 over the scope."""
    return global_norm(_base_diffs(scope, base_params)[0])


def sft_direction(scope: Scope, base_params: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """SFT-case direction: delta = (theta_sft - theta_0) * sqrt(d) / ||theta_sft - theta_0||_2.

    `base_params` maps parameter names of the base model (theta_0) to tensors; names are matched after
    removing peft's wrapping. Scope tensors missing from the base (or of another shape) get zero.
    """
    return rescale(_base_diffs(scope, base_params)[0], math.sqrt(scope.dim))


def worst_direction(scope: Scope, loss_at: Callable[[list[torch.Tensor]], torch.Tensor], *, scale: float,
                    init: list[torch.Tensor], steps: int = 10,
                    step_size: float = 0.5) -> tuple[list[torch.Tensor], list[float]]:
    """Worst-case direction by projected gradient ascent on the loss at theta + a delta.

    Maximise L(theta + a delta) subject to ||delta||_2 = r, r = sqrt(d):
        delta <- delta + eta * r * g / ||g||_2,  g = dL/d delta at the current delta,
        delta <- delta * r / ||delta||_2        (projection back onto the sphere).
    `loss_at(delta)` must return the differentiable loss at theta + scale * delta (it applies the
    perturbation itself, e.g. with `perturb.perturbed`). `init` is the starting direction (a random
    one). Returns the direction and the loss after each step (ascent trace).
    """
    if scale <= 0:
        raise UserError(f"bad value {scale} for the worst-case scale: expected a positive float")
    r = math.sqrt(scope.dim)
    delta = rescale([d.detach().clone() for d in init], r)
    trace = []
    for _ in range(steps):
        for d in delta:
            d.requires_grad_(True)
        loss = loss_at(delta)
        grads = torch.autograd.grad(loss, delta, allow_unused=True)
        grads = [torch.zeros_like(d) if g is None else g for d, g in zip(delta, grads, strict=True)]
        scope.apply_masks(grads)
        trace.append(float(loss.detach()))
        gn = global_norm(grads)
        with torch.no_grad():
            if gn == 0 or not math.isfinite(gn):  # flat, or the loss overflowed at this scale: keep delta
                break
            delta = [d.detach() + (step_size * r / gn) * g for d, g in zip(delta, grads, strict=True)]
            delta = rescale(delta, r)
    return [d.detach() for d in delta], trace
