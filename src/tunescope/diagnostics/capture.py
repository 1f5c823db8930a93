"""Temporary hooks that are always removed: a context manager over forward, pre-forward and tensor hooks.

Every diagnostic that looks inside a model goes through `hooks()`, so an exception in the middle of a
probe pass never leaves a hook behind (TransformerLens' `HookedRootModule.hooks()` pattern). `PassContext`
is what one instrumented pass hands to the metric recorders (diagnostics.metrics.LayerRecorder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

if TYPE_CHECKING:
    from tunescope.models.layers import ModelLayout


class HookSet:
    """Handles of the hooks added through it; `remove()` detaches them all (idempotent)."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, fn: Callable) -> None:
        """fn(module, args, output) after module.forward."""
        self._handles.append(module.register_forward_hook(fn))

    def forward_pre(self, module: nn.Module, fn: Callable) -> None:
        """fn(module, args) before module.forward."""
        self._handles.append(module.register_forward_pre_hook(fn))

    def tensor(self, tensor: torch.Tensor, fn: Callable[[torch.Tensor], None]) -> None:
        """fn(grad) when the gradient of `tensor` is computed (backward or autograd.grad)."""
        if tensor.requires_grad:
            self._handles.append(tensor.register_hook(fn))

    def __len__(self) -> int:
        return len(self._handles)

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()


@contextmanager
def hooks() -> Iterator[HookSet]:
    """`with hooks() as h: h.forward(module, fn) ...`; every hook is removed when the block exits."""
    hook_set = HookSet()
    try:
        yield hook_set
    finally:
        hook_set.remove()


@dataclass
class PassContext:
    """One instrumented pass, as seen by the recorders attaching to it; everything they add is undone at its end."""

    model: nn.Module
    layout: ModelLayout
    hooks: HookSet
    """Forward, pre-forward and tensor hooks, removed when the pass ends."""
    stack: ExitStack
    """Context managers a recorder enters (e.g. the attention wrapper); exited when the pass ends."""
    valid_tokens: torch.Tensor | None = None
    """bool [B, T] real tokens of the current forward (set before each one); read by shared instruments."""
    shared: dict[str, Any] = field(default_factory=dict)
    """Instruments several recorders share, by name, so one wrapper serves them all (see attention.attention_tap)."""


def block_output(output) -> torch.Tensor:
    """The residual stream h_l from a block's forward output ([B, T, d]); blocks return a tensor or a tuple."""
    return output[0] if isinstance(output, (tuple, list)) else output


def masked_token_rows(h: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """h [B, T, d] -> [n_valid, d]: the rows of real (non-padding) tokens."""
    if valid is None or valid.shape != h.shape[:2]:
        return h.reshape(-1, h.shape[-1])
    return h[valid.to(h.device, torch.bool)]
