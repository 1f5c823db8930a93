"""Training add-ons: optional behaviours of a fine-tuning run (GO noise, diagnose-first tables, LP-FT analyses)
as explicit objects that the recipe holds, instead of functions that modules slip into a global hook list.

An add-on (protocol checked at registration) has:
    name                    registry name ("go-noise", "diagnostics", ...)
    enabled(config)         whether this run wants it (e.g. noise_sigma > 0)
    before_train(run)       after the strategy prepared the model, before the Trainer exists
    callbacks(run)          Trainer callbacks it needs (list, may be empty)
    after_train(run)        after training and evaluation; may add keys to run.results
`AddonBase` gives the no-op defaults. The fine-tuning recipe names the add-ons it runs, in order
(experiments.finetune.FINETUNE_ADDONS), and keeps the enabled ones in `run.addons`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tunescope.registry import Registry


@dataclass
class RunState:
    """Everything an add-on may need about one fine-tuning run."""

    config: Any  # FinetuneConfig
    out_dir: Path
    model: Any
    tokenizer: Any
    data: Any  # the task's data (ClassificationData)
    tokenized: dict
    collator: Any
    results: dict
    base_model_factory: Callable[[], Any]  # a fresh copy of the pre-trained model (before any training)
    strategy: Any = None
    trainer: Any = None
    task: Any = None
    addons: list = field(default_factory=list)  # the enabled add-ons, in order
    extras: dict = field(default_factory=dict)  # shared scratch space between add-ons (e.g. test logits)


@runtime_checkable
class TrainingAddon(Protocol):
    name: str

    def enabled(self, config: Any) -> bool: ...

    def before_train(self, run: RunState) -> None: ...

    def callbacks(self, run: RunState) -> list: ...

    def after_train(self, run: RunState) -> None: ...


class AddonBase:
    """No-op defaults; a subclass sets `name` and overrides what it needs."""

    name: str = ""

    def enabled(self, config: Any) -> bool:
        return True

    def before_train(self, run: RunState) -> None:
        return None

    def callbacks(self, run: RunState) -> list:
        return []

    def after_train(self, run: RunState) -> None:
        return None


def _check_addon(name: str, addon: object) -> None:
    if not isinstance(addon, TrainingAddon) or addon.name != name:
        raise TypeError(f"training add-on {name!r} must implement name, enabled, before_train, callbacks, after_train "
                        "(and carry its registry name)")
    allowed = {"name", "enabled", "before_train", "callbacks", "after_train"}
    extra = sorted(a for a in dir(addon) if not a.startswith("_") and a not in allowed)
    if extra:  # a misspelled stage would silently never run
        raise TypeError(f"training add-on {name!r} has public members outside the protocol: {', '.join(extra)}")


TRAINING_ADDONS: Registry[TrainingAddon] = Registry("training add-on", check=_check_addon)


def enabled_addons(names: tuple[str, ...], config: Any) -> list[TrainingAddon]:
    """The add-ons `names` (in that order) that `config` turns on."""
    return [a for a in (TRAINING_ADDONS.get(n) for n in names) if a.enabled(config)]
