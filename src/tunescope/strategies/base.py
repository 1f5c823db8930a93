"""The Strategy protocol, the base class that gives its optional members their defaults, and the registry.

A strategy (torchtune-style explicit protocol, checked when it registers) has:
    name                    registry name ("full", "lora", ...)
    default_learning_rate   used when the config leaves learning_rate unset (`learning_rate_for`)
    options                 the option groups (dataclasses) it reads from the config, e.g. (LoraOptions,)
    trains                  False for strategies that fit everything in prepare() (`head`): no Trainer loop
    needs_head              True when it fits or trains a classification head (head, lp-ft, lp-lora)
    saves_own_checkpoints   True when save()/load() write their own format (SIFT's sparse delta)
    prepare(model, ctx)           -> the module to train: sets requires_grad, wraps with peft, ...
    create_optimizer(model, ctx)  -> torch.optim.Optimizer, or None for the Trainer's AdamW
    callbacks(model, ctx)         -> list of transformers TrainerCallback
    save(model, folder)           -> write the trained weights (only called when saves_own_checkpoints)
    load(model, folder)           -> restore what save() wrote into a prepared model

`StrategyBase` supplies the usual values of the optional members. Registration refuses an object that lacks a
member, whose methods are not callable, or that has a public attribute outside the protocol (a misspelled hook
such as `create_optimiser` would otherwise silently never run).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from tunescope.errors import UserError
from tunescope.registry import Registry


@dataclass
class StrategyContext:
    """What a strategy may look at while preparing a model (plain data; no trainer yet)."""

    config: Any  # a config holding the strategy's option groups (FinetuneConfig, NTKConfig, ...)
    tokenizer: Any
    data: Any = None  # the task's data (e.g. ClassificationData)
    tokenized: dict = field(default_factory=dict)  # split -> tokenized Dataset
    collator: Any = None
    results: dict = field(default_factory=dict)  # facts to record in results.json
    out_dir: Path | None = None
    inflection_layers: list[int] | None = None
    learning_rate: float | None = None  # the resolved peak learning rate (learning_rate_for)
    task: Any = None  # the Task that made the model (tasks.base.Task)
    # Work that several prepare() calls on the same pre-trained model and data share: the plan's trials pass one
    # dict to all candidates, so head, lp-ft and lp-lora fit their linear probe once.
    memo: dict = field(default_factory=dict)


@runtime_checkable
class Strategy(Protocol):
    name: str
    default_learning_rate: float
    options: tuple[type, ...]
    trains: bool
    needs_head: bool
    saves_own_checkpoints: bool

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module: ...

    def create_optimizer(self, model: nn.Module, ctx: StrategyContext) -> Any: ...

    def callbacks(self, model: nn.Module, ctx: StrategyContext) -> list: ...

    def save(self, model: nn.Module, folder: Path) -> None: ...

    def load(self, model: nn.Module, folder: Path) -> None: ...


class StrategyBase:
    """Defaults of the optional protocol members; subclasses set name / default_learning_rate and prepare()."""

    name: str = ""
    default_learning_rate: float = 0.0
    options: tuple[type, ...] = ()
    trains: bool = True
    needs_head: bool = False
    saves_own_checkpoints: bool = False

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        return model

    def create_optimizer(self, model: nn.Module, ctx: StrategyContext) -> Any:
        return None  # the Trainer's AdamW over the trainable parameters

    def callbacks(self, model: nn.Module, ctx: StrategyContext) -> list:
        return []

    def save(self, model: nn.Module, folder: Path) -> None:
        model.save_pretrained(str(folder), safe_serialization=True)

    def load(self, model: nn.Module, folder: Path) -> None:
        raise TypeError(f"strategy {self.name!r} keeps the Hugging Face checkpoint layout: load it with "
                        "models.load, not Strategy.load")


_DATA_MEMBERS = {"name": str, "default_learning_rate": float, "options": tuple, "trains": bool,
                 "needs_head": bool, "saves_own_checkpoints": bool}
_METHODS = ("prepare", "create_optimizer", "callbacks", "save", "load")


def check_strategy(name: str, strategy: object) -> None:
    """Refuse (TypeError, a programming error) a strategy that does not implement the whole protocol."""
    for member, kind in _DATA_MEMBERS.items():
        value = getattr(strategy, member, None)
        if not isinstance(value, kind) or (kind is float and isinstance(value, bool)):
            raise TypeError(f"strategy {name!r}: {member} must be a {kind.__name__}, got {value!r}")
    for method in _METHODS:
        if not callable(getattr(strategy, method, None)):
            raise TypeError(f"strategy {name!r}: {method}() is missing")
    if strategy.name != name:
        raise TypeError(f"strategy registered as {name!r} calls itself {strategy.name!r}")
    if strategy.default_learning_rate <= 0 and strategy.trains:
        raise TypeError(f"strategy {name!r}: default_learning_rate must be > 0")
    if not all(inspect.isclass(o) for o in strategy.options):
        raise TypeError(f"strategy {name!r}: options must be option-group classes")
    known = set(_DATA_MEMBERS) | set(_METHODS)
    extra = sorted(a for a in dir(strategy) if not a.startswith("_") and a not in known)
    if extra:
        raise TypeError(f"strategy {name!r} has public members outside the Strategy protocol: {', '.join(extra)} "
                        f"(protocol: {', '.join(sorted(known))}; make helpers private with a leading underscore)")


STRATEGIES: Registry[Strategy] = Registry("strategy", check=check_strategy)


def learning_rate_for(strategy: Strategy, config: Any) -> float:
    """The peak learning rate of a run: the config's, else the strategy's default (the one place this is decided)."""
    return getattr(config, "learning_rate", None) or strategy.default_learning_rate


def check_options(strategy: Strategy, config: Any, command: str) -> None:
    """UserError when `config` lacks an option group `strategy` reads (the command cannot run that strategy)."""
    missing = [o.__name__ for o in strategy.options if not isinstance(config, o)]
    if missing:
        raise UserError(f"bad value {strategy.name!r} for strategy: `{command}` has no {', '.join(missing)} "
                        "settings for it")


def freeze_all(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; SIFT-style strategies override the trainable count in results."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
