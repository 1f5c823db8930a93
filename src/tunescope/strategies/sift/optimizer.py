"""SiftAdamW: AdamW over the k-value increments of SIFT plus the dense head, with fp32 state.

Update of one trainable vector at step t (grad g, real weight entries w; AdamW, Loshchilov & Hutter):
    w <- w - lr * wd * w                               (decoupled weight decay on the real entries)
    m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
    w <- w - lr/(1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
For a sparse slot w = base + delta, so the same update is applied to the fp32 increment delta and the weight is
written back at once (W[idx] = base + delta, sparse.py): the weights after step t include update t.
kind="sgd" replaces the moment update by w <- w - lr * g (used to check the exact semantics).
Gradient clipping (max_grad_norm > 0): g <- g * min(1, c / ||g||) with ||g|| the global L2 norm over
the head gradients and the k-vector gradients together (the Trainer cannot see the k-vectors, so
the SIFT strategy hands clipping to this optimizer).
Moments exist only for the k selected entries (and the head) and are always fp32, whatever the
model dtype; a slot's state is keyed on SparseSlot.key (its fp32 master, or the fp32 weight itself), so
`state_dict` / `load_state_dict` work unchanged. Under torch.distributed, the slot gradients are averaged across
processes before the update.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from tunescope.strategies.sift.sparse import SiftEngine, SparseSlot, all_reduce_mean


def _no_decay(name: str) -> bool:
    """Biases and normalisation weights take no weight decay (the HF Trainer's default grouping)."""
    low = name.lower()
    return low.endswith("bias") or "norm" in low


class SiftAdamW(torch.optim.Optimizer):
    """AdamW (or plain SGD) for a SiftEngine's sparse increments and its dense parameters."""

    def __init__(self, engine: SiftEngine, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, kind: str = "adamw",
                 extra_dense: Iterable[tuple[str, nn.Parameter]] = (), max_grad_norm: float = 0.0):
        if kind not in ("adamw", "sgd"):
            raise ValueError(f"kind must be 'adamw' or 'sgd', got {kind!r}")
        self.engine, self.kind, self.max_grad_norm = engine, kind, max_grad_norm
        self.last_grad_norm: float | None = None
        dense = list(engine.dense.items()) + list(extra_dense)
        groups = [{"params": engine.keys(), "weight_decay": weight_decay, "sparse": True},
                  {"params": [p for n, p in dense if not _no_decay(n)], "weight_decay": weight_decay,
                   "sparse": False},
                  {"params": [p for n, p in dense if _no_decay(n)], "weight_decay": 0.0, "sparse": False}]
        groups = [g for g in groups if g["params"]]
        super().__init__(groups, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        self._slots: dict[int, SparseSlot] = {id(s.key): s for s in engine.slots.values()}

    def _grads(self) -> list[torch.Tensor]:
        return [self._grad(p) for g in self.param_groups for p in g["params"] if self._grad(p) is not None]

    def _grad(self, p: torch.Tensor) -> torch.Tensor | None:
        slot = self._slots.get(id(p))
        return p.grad if slot is None else slot.grad

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every vector with a gradient (formula in the module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # The dense dW never reached DDP: average the masked gradients across processes here.
        all_reduce_mean(self.engine.sparse_grads())
        if self.max_grad_norm and self.max_grad_norm > 0:
            grads = self._grads()
            if grads:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x.float()) for x in grads]))
                self.last_grad_norm = float(norm)
                coef = self.max_grad_norm / (float(norm) + 1e-6)
                if coef < 1.0:
                    for x in grads:
                        x.mul_(coef)
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                grad = self._grad(p)
                if grad is None:
                    continue
                slot = self._slots.get(id(p))
                if slot is not None:  # the fp32 increment delta is what trains; the weight follows it
                    idx = slot.indices  # decoded once for the gather below and the write
                    target = slot.increment(idx)
                else:
                    target = p
                grad = grad.float()
                if wd:
                    if slot is None:
                        p.mul_(1 - lr * wd)
                    else:
                        target.sub_((slot.base.float() + target) * (lr * wd))  # decay of the real entries
                if self.kind == "sgd":
                    target.add_(grad.to(target.dtype), alpha=-lr)
                else:
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(grad, dtype=torch.float32)
                        state["exp_avg_sq"] = torch.zeros_like(grad, dtype=torch.float32)
                    state["step"] += 1
                    t = state["step"]
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m.lerp_(grad, 1 - beta1)
                    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    step_size = lr / (1 - beta1 ** t)
                    denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(group["eps"])
                    if target.dtype == torch.float32:
                        target.addcdiv_(m, denom, value=-step_size)
                    else:
                        target.copy_((target.float() - step_size * m / denom).to(target.dtype))
                if slot is not None:
                    slot.write(target, idx)  # exact semantics: the weight includes this update now, not one step later
        # The slot gradients are not model parameters' .grad, so `model.zero_grad()` (all the HF Trainer calls
        # between steps) would never clear them: the step consumes its sparse gradients itself.
        self._clear_sparse_grads()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self._clear_sparse_grads()

    def _clear_sparse_grads(self) -> None:
        for slot in self.engine.slots.values():
            slot.grad = None


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of all tensors in the optimizer's per-parameter state (moments, step counters)."""
    total = 0
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                total += v.numel() * v.element_size()
    return total
