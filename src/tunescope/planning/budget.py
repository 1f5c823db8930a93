"""Budgets: how many parameters a candidate trains (counted from the model's shapes, before anything is built),
the largest LoRA rank / SIFT rate that fits a trainable-parameter budget, and epochs that fit a time budget.

Counts (exactly what the strategies train; checked against the built strategies in tests):
    full, lp-ft:       every parameter
    head:              the task head
    lora, lp-lora, lora-inflection:  sum over adapted linears W [d_out, d_in] in the chosen blocks of r (d_in + d_out),
                       plus the head (peft trains a classifier's head densely)
    sift:              sum over target tensors of min(floor(rate * numel) + 1, numel), plus the head
"""

from __future__ import annotations

import math

from torch import nn

from tunescope.models.layers import (
    block_index_of,
    default_lora_targets,
    default_sift_targets,
    head_parameter_names,
    model_layout,
)
from tunescope.planning.options import parse_budget_params

LORA_RANKS = (16, 8, 4, 2, 1)  # tried from the top: the largest rank within the budget wins


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or name.endswith("." + p) for p in patterns)


def head_params(model: nn.Module) -> int:
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in head_parameter_names(model))


def total_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lora_params(model: nn.Module, rank: int, layers: list[int] | None = None,
                targets: list[str] | None = None) -> int:
    """r * (d_in + d_out) for every adapted 2-D weight in `layers` (None: all blocks), plus the head."""
    layout = model_layout(model)
    targets = targets or default_lora_targets(model)
    count = 0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() != 2 or not _matches(name, targets):
            continue
        block = block_index_of(name + ".weight", layout)
        if block is not None and (layers is None or block in layers):
            count += rank * (weight.shape[0] + weight.shape[1])
    return count + head_params(model)


def _sift_target_weights(model: nn.Module, targets: list[str] | None = None) -> list:
    """The 2-D weights SIFT tunes: those of the modules matching `targets` (default: the architecture's)."""
    targets = targets or default_sift_targets(model)
    return [m.weight for n, m in model.named_modules()
            if getattr(m, "weight", None) is not None and m.weight.dim() == 2 and _matches(n, targets)]


def sift_params(model: nn.Module, rate: float, targets: list[str] | None = None) -> int:
    """k = min(floor(rate * numel) + 1, numel) per target weight, plus the head."""
    return sum(min(math.floor(rate * w.numel()) + 1, w.numel()) for w in _sift_target_weights(model, targets)) + \
        head_params(model)


def param_budget(text: str | None, total: int) -> int | None:
    """The budget in parameters: '1%' of `total`, or a count; None = no budget."""
    parsed = parse_budget_params(text)
    if parsed is None:
        return None
    kind, value = parsed
    return int(value * total) if kind == "fraction" else int(value)


def largest_rank(model: nn.Module, budget: int | None, wanted: int, layers: list[int] | None = None) -> int | None:
    """`wanted` when it fits (or no budget); else the largest of LORA_RANKS that fits; None when even r=1 does not."""
    if budget is None or lora_params(model, wanted, layers) <= budget:
        return wanted
    return next((r for r in LORA_RANKS if r < wanted and lora_params(model, r, layers) <= budget), None)


def largest_sift_rate(model: nn.Module, budget: int | None, wanted: float) -> float | None:
    """`wanted` when it fits; else the rate whose selected entries fill what the head leaves of the budget
    (rounded down to 3 significant digits); None when the head alone is over budget."""
    if budget is None or sift_params(model, wanted) <= budget:
        return wanted
    weights = _sift_target_weights(model)
    room = budget - head_params(model) - len(weights)  # the +1 per tensor of k = floor(rate n) + 1
    numel = sum(w.numel() for w in weights)
    if room <= 0 or numel == 0:
        return None
    rate = room / numel
    digits = 3 - math.floor(math.log10(rate)) - 1
    return math.floor(rate * 10**digits) / 10**digits


def epochs_within(minutes_left: float | None, seconds_per_step: float, steps_per_epoch: int,
                  wanted: float) -> float:
    """`wanted` epochs, or fewer (a whole number, at least 1) when they do not fit in `minutes_left`."""
    if minutes_left is None or seconds_per_step <= 0:
        return wanted
    fit = minutes_left * 60.0 / (seconds_per_step * max(steps_per_epoch, 1))
    return float(max(1, min(wanted, math.floor(fit)))) if fit < wanted else wanted
