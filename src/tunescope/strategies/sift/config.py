"""SIFT options and the default target tensors of each architecture.

k per target tensor = floor(rate * numel) + 1 (never more than numel); targets are module-name
patterns whose `.weight` is sparsely tuned; the classification head always trains densely.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from tunescope.config import Options
from tunescope.errors import UserError

if TYPE_CHECKING:
    from torch import nn

# Default targets: attention q, k, v, o as block-relative module names (suffixes, peft-style), discovered
# from the model by models.layers.default_sift_targets (BERT attention.self.query ... attention.output.dense,
# GPT-2 attn.c_attn + attn.c_proj, Llama self_attn.q_proj ... o_proj).

MASK_KINDS = ("top", "random")


@dataclass
class SiftConfig:
    """Settings of one SIFT run (all plain data, saved next to the delta as JSON)."""

    rate: float = 0.01
    """Fraction of each target tensor that is trainable: k = floor(rate * numel) + 1."""
    targets: list[str] | None = None
    """Module-name patterns (suffix match, or fnmatch globs with * ?); None = attention q,k,v,o."""
    selection_batches: int = 1
    """Micro-batches whose summed gradient chooses the mask (paper: 1)."""
    mask: Literal["top", "random"] = "top"
    """`top`: top-k |accumulated gradient| (the method); `random`: k random entries (ablation)."""
    seed: int = 0
    """Seed of the random mask."""
    extra: dict = field(default_factory=dict)
    """Free-form facts recorded with the delta (base model name, ...)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.rate, (int, float)) and 0.0 < float(self.rate) <= 1.0):
            raise UserError(f"bad value {self.rate!r} for sift_rate: expected a number in (0, 1]")
        self.rate = float(self.rate)
        if not (isinstance(self.selection_batches, int) and self.selection_batches >= 1):
            raise UserError(f"bad value {self.selection_batches!r} for sift_selection_batches: "
                            "expected an integer >= 1")
        if self.mask not in MASK_KINDS:
            raise UserError(f"bad value {self.mask!r} for sift_mask: expected one of {', '.join(MASK_KINDS)}")
        if self.targets is not None:
            if isinstance(self.targets, str):
                self.targets = [t.strip() for t in self.targets.split(",") if t.strip()]
            if not self.targets:
                raise UserError("bad value [] for sift_targets: expected at least one module-name pattern")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SiftOptions(Options):
    """The SIFT fields of a command's config; validated by building the SiftConfig they describe (one place)."""

    sift_rate: float = 0.01
    """SIFT: fraction of each target tensor that trains (k = floor(rate * numel) + 1 entries per tensor)."""
    sift_targets: list[str] | None = None
    """SIFT: module-name patterns of the sparsely tuned weights (suffixes or globs; default attention q,k,v,o)."""
    sift_selection_batches: int = 1
    """SIFT: micro-batches whose summed gradient chooses the top-k mask (paper: 1)."""
    sift_mask: Literal["top", "random"] = "top"
    """SIFT: `top` (top-k |gradient|, the method) or `random` (the ablation: k random entries)."""

    def validate(self) -> None:
        self.sift_config()

    def sift_config(self, seed: int = 0, **extra) -> SiftConfig:
        """The SiftConfig these fields describe (UserError naming the sift_* key on a bad value)."""
        return SiftConfig(rate=self.sift_rate, targets=self.sift_targets, selection_batches=self.sift_selection_batches,
                          mask=self.sift_mask, seed=seed, extra=extra)


def num_selected(numel: int, rate: float) -> int:
    """k = floor(rate * numel) + 1, capped at numel (the paper's count of trainable entries per tensor)."""
    return min(int(math.floor(rate * numel)) + 1, numel)


def matches(module_name: str, pattern: str) -> bool:
    """A pattern matches a module name exactly, as a dotted suffix, or as an fnmatch glob."""
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(module_name, pattern)
    return module_name == pattern or module_name.endswith("." + pattern)


def resolve_targets(model: nn.Module, patterns: list[str] | None) -> dict[str, nn.Parameter]:
    """The target weights: {parameter name: parameter} of every module matching a pattern.

    Only `module.weight` of modules with a 2-D weight (Linear, GPT-2 Conv1D) is targeted; the head
    never is (it trains densely). Raises UserError when nothing matches.
    """
    # torch here, not at the top: the CLI reads SiftOptions from this module without loading torch
    from torch import nn

    from tunescope.models.layers import default_sift_targets, model_layout

    layout = model_layout(model)
    if patterns is None:
        patterns = default_sift_targets(model)
        if not patterns:
            raise UserError(f"no default SIFT targets for model type {layout.model_type!r}: pass --sift-targets")
    head_ids = {id(p) for p in layout.head.parameters()} if layout.head is not None else set()
    found: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter) or weight.dim() != 2 or id(weight) in head_ids:
            continue
        if any(matches(name, p) for p in patterns):
            found[f"{name}.weight" if name else "weight"] = weight
    if not found:
        raise UserError(f"bad value {','.join(patterns)!r} for sift_targets: no module with a 2-D weight matches "
                        "(expected module-name suffixes such as 'attention.self.query' or globs such as '*.q_proj')")
    return found
