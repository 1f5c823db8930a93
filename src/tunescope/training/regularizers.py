"""JREG: a regulariser against the final-layer jump (METHODS.md section 3; [ours], the paper's loss is not public).

loss = task loss + lambda * R, with R computed differentiably from the displacements Psi_l of the
training batch itself: the forward hooks of `DisplacementCapture(differentiable=True)` see the hidden
states the training forward pass already produces, so there is no second forward pass.

Forms of R (Psi_l = masked mean over the batch's valid tokens of (1 - cos(h_{l-1}, h_l)) / 2):
- `jump` (default): R = sum_{l=2..L} max(0, Psi_l - Psi_{l-1}), every upward step of the profile
  (penalising only Psi_L would just move the jump to layer L-1);
- `final`: R = Psi_L;
- `all`: R = sum_l w_l Psi_l, default w_l = 1/L (the mean displacement).

lambda = 0 returns the plain loss tensor itself and registers no hooks: bit-for-bit the plain loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tunescope.diagnostics.jump import DisplacementCapture
from tunescope.errors import UserError

JREG_FORMS = ("jump", "final", "all")


def jreg_penalty(psi: Tensor, form: str = "jump", weights: Sequence[float] | None = None) -> Tensor:
    """R from the per-layer displacements psi [L] (differentiable).

    jump:  R = sum_{l=2..L} max(0, Psi_l - Psi_{l-1})
    final: R = Psi_L
    all:   R = sum_l w_l Psi_l  (w_l = 1/L unless `weights` gives L numbers)
    """
    if form == "jump":
        if psi.numel() < 2:
            return psi.sum() * 0.0
        return torch.relu(psi[1:] - psi[:-1]).sum()
    if form == "final":
        return psi[-1]
    if form == "all":
        if weights is None:
            w = torch.full_like(psi, 1.0 / psi.numel())
        else:
            if len(weights) != psi.numel():
                raise UserError(f"bad value {list(weights)!r} for jreg_weights: expected {psi.numel()} numbers "
                                f"(one per layer)")
            w = torch.tensor(list(weights), dtype=psi.dtype, device=psi.device)
        return (w * psi).sum()
    raise UserError(f"bad value {form!r} for jreg_form: expected one of {', '.join(JREG_FORMS)}")


@dataclass
class JumpRegularizer:
    """Adds lambda * R to a loss, with R from the hidden states of the same forward pass.

    Usage in a training step::

        reg = JumpRegularizer(lam=0.1, form="jump")
        with reg.track(model, batch["attention_mask"]) as tracked:
            out = model(**batch)
            loss = tracked.loss(out.loss)        # out.loss + lam * R
        loss.backward()
    """

    lam: float = 0.1
    form: str = "jump"
    weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.lam, (int, float)) and self.lam >= 0 and self.lam == self.lam):
            raise UserError(f"bad value {self.lam!r} for jreg: expected a number >= 0")
        if self.form not in JREG_FORMS:
            raise UserError(f"bad value {self.form!r} for jreg_form: expected one of {', '.join(JREG_FORMS)}")

    @property
    def active(self) -> bool:
        return self.lam > 0

    @contextmanager
    def track(self, model: nn.Module, attention_mask: Tensor | None):
        """Context for one training forward pass; yields a `_Tracked` whose `loss(task_loss)` adds lambda * R."""
        if not self.active:
            yield _Tracked(self, None)
            return
        with DisplacementCapture(model, differentiable=True) as cap:
            cap.set_mask(attention_mask)
            yield _Tracked(self, cap)


class _Tracked:
    def __init__(self, reg: JumpRegularizer, cap: DisplacementCapture | None):
        self.reg, self.cap = reg, cap
        self.penalty: float | None = None  # R of this batch, for logging
        self.psi: list[float] | None = None

    def loss(self, task_loss: Tensor) -> Tensor:
        """task_loss + lambda * R (task_loss unchanged, the same tensor, when lambda = 0)."""
        if self.cap is None:
            return task_loss
        psi = self.cap.batch_psi()
        r = jreg_penalty(psi, self.reg.form, self.reg.weights)
        self.penalty = float(r.detach())
        self.psi = psi.detach().tolist()
        return task_loss + self.reg.lam * r.to(task_loss.dtype)
