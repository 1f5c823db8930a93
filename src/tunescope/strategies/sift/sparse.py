"""The sparse increment: per target tensor W a fixed set of k flat indices and the k trained values.

W[idx] = base + delta at all times (sum in fp32, one cast to W's dtype), where base = W[idx] before training and
delta is the trained increment. What is kept per selected entry, and why nothing more:
- the indices, packed (indices.py): ~2 bytes per entry at SIFT's rates (int64: 8);
- base, in W's own dtype: an exact copy of the original entries, the one thing W no longer holds once trained;
- the increment only where W cannot hold it. An fp32 W holds it: every write stores W[idx] = fl(base + d) for an
  fp32 d, and for such a W the increment read back, d' = fl(W[idx] - base), rebuilds it exactly,
  fl(base + d') = W[idx] (the difference is exact when base and W[idx] are within a factor of 2 of each other,
  Sterbenz; otherwise d' is the float nearest the true difference and base + d' rounds back to W[idx]; checked on
  random and adversarial pairs in tests/unit/test_sift_indices.py). So saving d' and merging it onto the base
  model gives the trained weights bit for bit, and no copy of the increment is kept. A bf16 / fp16 W would lose
  updates below its resolution, so there an fp32 `master` increment is kept;
- the masked gradient, fp32 [k], only between backward and the optimizer step.
AdamW's two moments (fp32 [k], optimizer.py) complete SIFT's training state.

Gradients reach the slot through a `register_post_accumulate_grad_hook` on W: once autograd has accumulated dW, the
hook gathers dW[idx] into the slot's gradient (summing over micro-batches, exactly like dense accumulation) and
frees dW at once, so no target tensor keeps a dense gradient after backward.

Hooks are per tensor closures (O(1) work beyond the gather; no loop over the model's parameters)
and nothing is logged or kept per step, so memory stays flat however long training runs.
Under torch.distributed the selection gradient and the slot gradients are all-reduced (mean) by us;
the target weights are excluded from DDP's own reduction (`_ddp_params_and_buffers_to_ignore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tunescope.strategies.sift.config import SiftConfig, num_selected, resolve_targets
from tunescope.strategies.sift.indices import PackedIndices
from tunescope.strategies.sift.mask import random_indices, topk_indices, topk_share


@dataclass
class SparseSlot:
    """One target tensor's sparse increment (see the module docstring for what is kept and why).

    weight: the model's parameter W (any shape, any float dtype).
    k: the number of selected entries.
    index: the k sorted flat indices into W, packed; None until the mask is chosen.
    base: [k] W[indices] before training, in W's dtype; None until the mask is chosen.
    master: fp32 [k] increment when W is not fp32 (allocated with the slot: the optimizer keys its state on it);
        None for an fp32 W, whose increment is W[indices] - base.
    grad: fp32 [k] masked gradient between backward and the optimizer step, else None.
    """

    name: str
    weight: nn.Parameter
    k: int
    index: PackedIndices | None = None
    base: torch.Tensor | None = None
    master: torch.Tensor | None = None
    grad: torch.Tensor | None = None

    @property
    def key(self) -> torch.Tensor:
        """The tensor the optimizer keys this slot's state on: the fp32 master, or W itself (fp32 W). Both exist
        before the mask is chosen (the Trainer builds the optimizer first) and are fp32, the dtype
        `Optimizer.load_state_dict` casts the saved moments to."""
        return self.master if self.master is not None else self.weight

    @property
    def indices(self) -> torch.Tensor:
        """The flat indices, int64 [k] (decoded; empty before the mask is chosen)."""
        if self.index is None:
            return torch.empty(0, dtype=torch.int64, device=self.weight.device)
        return self.index.flat()

    def increment(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """The increment delta, fp32 [k]: the master itself, or W[indices] - base (a new tensor) for an fp32 W."""
        if self.master is not None:
            return self.master
        idx = self.indices if indices is None else indices
        return self.weight.detach().reshape(-1)[idx] - self.base

    def write(self, delta: torch.Tensor, indices: torch.Tensor | None = None) -> None:
        """W[indices] = base + delta (fp32 sum, cast to W's dtype): the one place the weight changes; the master,
        where kept, becomes delta."""
        idx = self.indices if indices is None else indices
        with torch.no_grad():
            if self.master is not None and delta is not self.master:
                self.master.copy_(delta)
            flat = self.weight.data.view(-1)
            flat[idx] = (self.base.float() + delta).to(flat.dtype)

    def tensors(self) -> list[torch.Tensor]:
        """What the slot keeps besides W and the transient gradient: packed indices, base, master."""
        kept = self.index.tensors() if self.index is not None else []
        return kept + [t for t in (self.base, self.master) if t is not None]


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
    "train" (gather dW[idx] into the slot's gradient, free dW), "off" (leave dW alone).
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
            # An fp32 W holds its own increment exactly; a lower-precision one needs the fp32 master (docstring).
            master = None if w.dtype == torch.float32 else torch.zeros(k, dtype=torch.float32, device=w.device)
            self.slots[name] = SparseSlot(name, w, k, master=master)
        self.mode = "off"
        self.selected = False
        self.grad_topk_share: float | None = None
        self._selection: dict[str, torch.Tensor] = {}
        self._handles = [slot.weight.register_post_accumulate_grad_hook(self._make_hook(slot))
                         for slot in self.slots.values()]
        # DDP must not bucket / reduce the dense dW of targets: we free it and reduce the slot gradients ourselves.
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
                if slot.grad is None:
                    slot.grad = g
                else:
                    slot.grad.add_(g)
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
        """Install fixed masks (sorted flat indices) and optionally trained increments (resuming); enter train mode."""
        for name, slot in self.slots.items():
            idx = masks[name].to(device=slot.weight.device, dtype=torch.int64)
            if idx.numel() != slot.k:
                raise ValueError(f"mask of {name} has {idx.numel()} entries, expected k={slot.k}")
            with torch.no_grad():
                if self.selected:  # re-masking: first put the old base back
                    slot.weight.data.view(-1)[slot.indices] = slot.base
                slot.index = PackedIndices.pack(idx, slot.weight.numel())
                slot.base = slot.weight.detach().reshape(-1)[idx].clone()
                slot.grad = None
                delta = torch.zeros(slot.k, dtype=torch.float32, device=idx.device) if deltas is None else \
                    deltas[name].to(device=idx.device, dtype=torch.float32)
            slot.write(delta, idx)
        self.selected = True
        self.mode = "train"

    # ---- bookkeeping ----------------------------------------------------------------------------
    def keys(self) -> list[torch.Tensor]:
        """The tensors the optimizer keys the slots' state on (SparseSlot.key), in slot order."""
        return [s.key for s in self.slots.values()]

    def sparse_grads(self) -> list[torch.Tensor]:
        """The slots' masked gradients that are set (fp32 [k] each)."""
        return [s.grad for s in self.slots.values() if s.grad is not None]

    @property
    def selected_params(self) -> int:
        return sum(s.k for s in self.slots.values())

    def dense_params(self) -> int:
        return sum(p.numel() for p in self.dense.values())

    def bookkeeping_tensors(self) -> list[torch.Tensor]:
        """What SIFT keeps besides the model's weights and the optimizer's moments: per slot the packed indices,
        base and (non-fp32 W) master increment; gradients are not kept (freed by every step)."""
        return [t for s in self.slots.values() for t in s.tensors()]

    def bookkeeping_bytes(self) -> int:
        """Bytes of `bookkeeping_tensors()`."""
        return sum(t.numel() * t.element_size() for t in self.bookkeeping_tensors())

    def remove(self) -> None:
        """Remove the gradient hooks (the weights keep their current, merged values)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self.mode = "off"
