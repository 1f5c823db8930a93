"""The Strategy protocol and the registry every strategy joins.

A strategy is an object with:
    name                         registry name ("full", "lora", ...)
    default_learning_rate        used when the config leaves learning_rate unset
    prepare(model, ctx)          -> the module to train: sets requires_grad, wraps with peft, ...
and optionally:
    create_optimizer(model, ctx) -> torch.optim.Optimizer (None: the Trainer's AdamW over trainable params)
    callbacks(model, ctx)        -> list of transformers TrainerCallback
    save(model, folder)          -> write the trained weights (default: save_pretrained, safetensors / PEFT layout)
    load(model, folder)          -> restore weights written by save() into a prepared model (resume)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from tunescope.registry import Registry


@dataclass
class StrategyContext:
    """What a strategy may look at while preparing a model (plain data; no trainer yet)."""

    config: Any  # FinetuneConfig
    tokenizer: Any
    data: Any = None  # ClassificationData
    tokenized: dict = field(default_factory=dict)  # split -> tokenized Dataset
    collator: Any = None
    results: dict = field(default_factory=dict)  # facts to record in results.json
    out_dir: Path | None = None
    inflection_layers: list[int] | None = None


@runtime_checkable
class Strategy(Protocol):
    name: str
    default_learning_rate: float

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module: ...


STRATEGIES: Registry[Strategy] = Registry("strategy")


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; SIFT-style strategies override the trainable count in results."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
