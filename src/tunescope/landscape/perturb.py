"""Move a model to theta + a * delta and back, exactly, without a second copy of the model.

Choice: we never write the weights. Each perturbed parameter gets a `torch.nn.utils.parametrize`
parametrization whose forward returns `w + a * delta` (computed per module, when the module reads
its weight). The original Parameter object is only moved under `module.parametrizations.<name>.original`
while the perturbation is active; removing it (`leave_parametrized=False`) hands that very object
back, so the weights are bit-identical afterwards by construction (no `w + ad - ad` rounding), and no
backup copy of the weights is ever made. Memory: the model + the direction (which worst-case and
SFT directions need anyway) + one perturbed tensor per module at a time in no_grad evaluation.
Changing the scale `a` is a float assignment: the radius search re-registers nothing.
Gradients flow through the parametrization, so the same machinery gives dL/d delta for the
worst-case ascent (make `delta` require grad).

Tied weights (GPT-2 / SmolLM lm_head = wte) are one Parameter used by several modules: every module
that holds it gets the same parametrization, so the tied copies move together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize


class _Scale:
    """The shared scalar a; one object for all parametrizations of one perturbation."""

    def __init__(self) -> None:
        self.value = 0.0


class _AddDirection(nn.Module):
    """Parametrization w -> w + a * delta (delta has w's shape; a lives in a shared _Scale)."""

    def __init__(self, delta: torch.Tensor, scale: _Scale) -> None:
        super().__init__()
        # A plain attribute, not a buffer: the direction must not enter state_dict().
        self.delta = delta
        self.scale = scale

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        a = self.scale.value
        if a == 0.0 and not self.delta.requires_grad:
            return w
        return w + a * self.delta.to(dtype=w.dtype)


def holders_of(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """id(Parameter) -> every (module, attribute) that holds it directly (several when weights are tied)."""
    out: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for attr, p in list(module._parameters.items()):
            if p is not None:
                out.setdefault(id(p), []).append((module, attr))
    return out


class Perturbation:
    """An active perturbation theta + a * delta; `set_scale(a)` moves along the direction.

    Built by `perturbed(model, params, direction)`; valid only inside that context.
    """

    def __init__(self, scale: _Scale) -> None:
        self._scale = scale

    @property
    def scale(self) -> float:
        return self._scale.value

    def set_scale(self, a: float) -> None:
        self._scale.value = float(a)


@contextmanager
def perturbed(model: nn.Module, params: list[nn.Parameter], direction: list[torch.Tensor],
              scale: float = 0.0) -> Iterator[Perturbation]:
    """Context in which every module reads `p + a * delta_p` instead of p, for p in `params`.

    params[i] and direction[i] have the same shape. On exit the parametrizations are removed and
    each module holds its original Parameter object again (bit-identical, same identity).
    """
    if len(params) != len(direction):
        raise ValueError(f"{len(params)} parameters but {len(direction)} direction tensors")
    shared = _Scale()
    shared.value = float(scale)
    holders = holders_of(model)
    registered: list[tuple[nn.Module, str]] = []
    try:
        for p, d in zip(params, direction, strict=True):
            if d.shape != p.shape:
                raise ValueError(f"direction shape {tuple(d.shape)} != parameter shape {tuple(p.shape)}")
            places = holders.get(id(p))
            if not places:
                raise ValueError("a parameter in the scope is not held by any module of this model")
            par = _AddDirection(d, shared)
            for module, attr in places:
                # unsafe=True: skip the registration-time consistency call (it would run the forward once).
                parametrize.register_parametrization(module, attr, par, unsafe=True)
                registered.append((module, attr))
        yield Perturbation(shared)
    finally:
        for module, attr in reversed(registered):
            if parametrize.is_parametrized(module, attr):
                parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
