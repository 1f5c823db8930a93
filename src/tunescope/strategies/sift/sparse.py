"""The sparse increment: per target tensor W a fixed set of k flat indices and k fp32 values.

W[idx] = base + delta at all times, where base = W[idx] before training (fp32) and delta is the
trainable k-vector. Gradients reach delta through a `register_post_accumulate_grad_hook` on W:
once autograd has accumulated dW, the hook gathers dW[idx] into delta.grad (summing over
micro-batches, exactly like dense accumulation) and frees dW at once, so no target tensor keeps
a dense gradient after backward.

Hooks are per tensor closures (O(1) work beyond the gather; no loop over the model's parameters)
and nothing is logged or kept per step, so memory stays flat however long training runs.
Under torch.distributed the selection gradient and delta.grad are all-reduced (mean) by us;
the target weights are excluded from DDP's own reduction (`_ddp_params_and_buffers_to_ignore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tunescope.strategies.sift.config import SiftConfig, num_selected, resolve_targets
from tunescope.strategies.sift.mask import random_indices, topk_indices, topk_share


@dataclass
class SparseSlot:
    """One target tensor's sparse increment.

    weight: the model's parameter W (any shape, any float dtype).
    indices: int64 [k] flat indices into W (sorted); empty until the mask is chosen.
    base: fp32 [k] values of W[indices] before training.
    delta: fp32 [k] trainable increment (a leaf tensor; its .grad is the masked gradient).
    """

    name: str
    weight: nn.Parameter
    k: int
    indices: torch.Tensor
    base: torch.Tensor
    delta: torch.Tensor

    def write(self) -> None:
        """W[indices] = base + delta (cast to W's dtype): the one place the weight changes."""
        with torch.no_grad():
            flat = self.weight.data.view(-1)
            flat[self.indices] = (self.base + self.delta).to(flat.dtype)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average tensors in place across processes (one flat all-reduce; no-op on a single process)."""
    world = _world_size()
    if world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1).float() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset:offset + n].view_as(t))
        offset += n


class SiftEngine:
    """Turns a model into a SIFT model: targets with sparse increments, the head dense, the rest frozen.

    Modes of the gradient hooks: "select" (sum dense dW into a selection buffer, free dW),
    "train" (gather dW[idx] into delta.grad, free dW), "off" (leave dW alone).
    """

    def __init__(self, model: nn.Module, config: SiftConfig, dense_names: Iterable[str] = ()):
        self.model = model
        self.config = config
        targets = resolve_targets(model, config.targets)
        params = dict(model.named_parameters())
        for p in model.parameters():
            p.requires_grad_(False)
        self.dense: dict[str, nn.Parameter] = {n: params[n] for n in dense_names}
        for p in self.dense.values():
            p.requires_grad_(True)
        self.slots: dict[str, SparseSlot] = {}
        for name, w in targets.items():
            w.requires_grad_(True)  # autograd must produce dW for the hook to gather from
            k = num_selected(w.numel(), config.rate)
            dev = w.device
            self.slots[name] = SparseSlot(
                name, w, k, indices=torch.empty(0, dtype=torch.int64, device=dev),
                base=torch.zeros(k, dtype=torch.float32, device=dev),
                delta=torch.zeros(k, dtype=torch.float32, device=dev, requires_grad=True))
        self.mode = "off"
        self.selected = False
        self.grad_topk_share: float | None = None
        self._selection: dict[str, torch.Tensor] = {}
        self._handles = [slot.weight.register_post_accumulate_grad_hook(self._make_hook(slot))
                         for slot in self.slots.values()]
        # DDP must not bucket / reduce the dense dW of targets: we free it and reduce delta.grad ourselves.
        ignore = list(getattr(model, "_ddp_params_and_buffers_to_ignore", [])) + list(self.slots)
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignore)

    # ---- gradient hooks -------------------------------------------------------------------------
    def _make_hook(self, slot: SparseSlot) -> Callable[[torch.Tensor], None]:
        def hook(weight: torch.Tensor) -> None:
            if self.mode == "off" or weight.grad is None:
                return
            grad = weight.grad
            if self.mode == "select":
                buf = self._selection.get(slot.name)
                if buf is None:
                    self._selection[slot.name] = grad.detach().float().clone()
                else:
                    buf.add_(grad.detach().float())
            else:  # train: only the k selected entries of dW survive
                g = grad.detach().reshape(-1).index_select(0, slot.indices).float()
                if slot.delta.grad is None:
                    slot.delta.grad = g
                else:
                    slot.delta.grad.add_(g)
            weight.grad = None  # free the dense gradient as soon as it is consumed

        return hook

    # ---- mask -----------------------------------------------------------------------------------
    def select(self, batches: Iterable[dict], loss_fn: Callable[[nn.Module, dict], torch.Tensor] | None = None,
               ) -> None:
        """Choose the masks from the gradient summed over `config.selection_batches` micro-batches.

        G_W = sum over selection batches of dL/dW (all-reduced across processes, so every rank
        selects the same entries); mask = top-k |G_W| with k = floor(rate * numel) + 1, or k random
        entries for mask="random". Gradients of the dense parameters produced here are discarded.
        """
        if self.config.mask == "random":
            gen = torch.Generator().manual_seed(self.config.seed)
            self.set_masks({n: random_indices(s.weight.numel(), s.k, gen) for n, s in self.slots.items()})
            return
        loss_fn = loss_fn or (lambda m, b: m(**b).loss)
        was_training = self.model.training
        self.model.train()
        self.mode, self._selection = "select", {}
        seen = 0
        try:
            for batch in batches:
                loss_fn(self.model, batch).backward()
                seen += 1
                if seen >= self.config.selection_batches:
                    break
        finally:
            self.mode = "off"
            self.model.train(was_training)
            for p in self.dense.values():
                p.grad = None
        if seen == 0:
            raise ValueError("SIFT mask selection got no batches")
        grads = [self._selection.get(n, torch.zeros(s.weight.shape, device=s.weight.device))
                 for n, s in self.slots.items()]
        all_reduce_mean(grads)
        masks = {n: topk_indices(g, s.k) for (n, s), g in zip(self.slots.items(), grads)}
        sq_sel = sum(float(g.reshape(-1)[masks[n]].double().pow(2).sum()) for n, g in zip(self.slots, grads))
        sq_all = sum(float(g.double().pow(2).sum()) for g in grads)
        self.grad_topk_share = sq_sel / sq_all if sq_all > 0 else 0.0
        self.per_tensor_share = {n: topk_share(g, masks[n]) for n, g in zip(self.slots, grads)}
        self._selection = {}
        self.set_masks(masks)

    def set_masks(self, masks: dict[str, torch.Tensor], deltas: dict[str, torch.Tensor] | None = None) -> None:
        """Install fixed masks (and optionally trained deltas, e.g. when resuming); enter train mode."""
        for name, slot in self.slots.items():
            idx = masks[name].to(device=slot.weight.device, dtype=torch.int64)
            if idx.numel() != slot.k:
                raise ValueError(f"mask of {name} has {idx.numel()} entries, expected k={slot.k}")
            with torch.no_grad():
                if self.selected:  # re-masking: first put the old base back
                    slot.weight.data.view(-1)[slot.indices] = slot.base.to(slot.weight.dtype)
                slot.indices = idx
                slot.base.copy_(slot.weight.detach().reshape(-1)[idx].float())
                slot.delta.zero_()
                if deltas is not None:
                    slot.delta.copy_(deltas[name].to(slot.delta))
            slot.write()
        self.selected = True
        self.mode = "train"

    # ---- bookkeeping ----------------------------------------------------------------------------
    def deltas(self) -> list[torch.Tensor]:
        return [s.delta for s in self.slots.values()]

    def sync_weights(self) -> None:
        for s in self.slots.values():
            s.write()

    @property
    def selected_params(self) -> int:
        return sum(s.k for s in self.slots.values())

    def dense_params(self) -> int:
        return sum(p.numel() for p in self.dense.values())

    def bookkeeping_bytes(self) -> int:
        """Bytes of indices + base + delta (what SIFT keeps besides optimizer moments)."""
        return sum(t.numel() * t.element_size() for s in self.slots.values()
                   for t in (s.indices, s.base, s.delta))

    def remove(self) -> None:
        """Remove the gradient hooks (the weights keep their current, merged values)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.mode = "off"
