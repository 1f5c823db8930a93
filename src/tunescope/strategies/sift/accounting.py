"""Bytes of training state, counted the same way for SIFT, LoRA and full fine-tuning (results["sift"], the benches).

    state bytes = sum of the bytes of every tensor kept for training beyond the pre-trained model's weights,
                  each storage counted once:
      - the optimizer's per-parameter state: every tensor in `optimizer.state` (AdamW's exp_avg and exp_avg_sq,
        and torch's 0-d `step` tensors);
      - the tensors the strategy itself adds: SIFT per target its packed indices, the copy of the k original
        entries (base) and, for a non-fp32 weight, its fp32 master increment (`SiftEngine.bookkeeping_tensors`);
        LoRA its adapter tensors A and B and any `modules_to_save` copy (`adapter_tensors`: peft's adapter state
        dict); full fine-tuning nothing.
    Not counted: the model's own weights, also where a strategy trains them in place (SIFT's targets, a densely
    trained head); gradients (made by backward, freed by every step); activations.

Per trainable entry with fp32 weights and AdamW this is 12 bytes for LoRA (4 for the entry + 8 for its two moments)
and for SIFT 8 (moments) + 4 (base) + about 2 (packed index, sift/indices.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of `tensors`, a tensor seen twice (same object or same memory) counted once."""
    seen: set = set()
    total = 0
    for t in tensors:
        key = (t.device, t.data_ptr(), t.numel()) if t.numel() else id(t)
        if key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor in the optimizer's per-parameter state."""
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


def adapter_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The tensors a peft adapter adds to its base model (LoRA's A and B, modules_to_save copies)."""
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(model).values())


def state_bytes(optimizer: torch.optim.Optimizer | None, kept: Iterable[torch.Tensor] = ()) -> int:
    """Training-state bytes (module docstring): the optimizer's state tensors + `kept`, the strategy's own."""
    tensors = optimizer_tensors(optimizer) if optimizer is not None else []
    return tensor_bytes([*tensors, *kept])
