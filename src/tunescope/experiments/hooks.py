"""Extension points of the fine-tuning recipe.

Later capabilities (calibration, head norms, feature change, diagnostics) add themselves here
instead of editing the recipe: register a function on FINETUNE_HOOKS["before_train"] or
["after_train"]. Each receives the RunState and may add keys to `run.results`.
Hooks run in registration order; the modules that register them are listed in HOOK_MODULES.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOOK_MODULES: tuple[str, ...] = (
    "tunescope.experiments.diagnose",
    "tunescope.experiments.analyses_lpft",
    "tunescope.experiments.landscape",
)


@dataclass
class RunState:
    """Everything a hook may need about one fine-tuning run."""

    config: Any  # FinetuneConfig
    out_dir: Path
    model: Any
    tokenizer: Any
    data: Any  # ClassificationData
    tokenized: dict
    collator: Any
    results: dict
    base_model_factory: Callable[[], Any]  # a fresh copy of the pre-trained model (before any training)
    strategy: Any = None
    trainer: Any = None
    extras: dict = field(default_factory=dict)  # shared scratch space between hooks (e.g. test logits)


FINETUNE_HOOKS: dict[str, list[Callable[[RunState], None]]] = {"before_train": [], "after_train": []}
_loaded = False


def register_hook(stage: str, fn: Callable[[RunState], None]) -> Callable[[RunState], None]:
    if stage not in FINETUNE_HOOKS:
        raise ValueError(f"unknown hook stage {stage!r}; stages: {', '.join(FINETUNE_HOOKS)}")
    if fn not in FINETUNE_HOOKS[stage]:
        FINETUNE_HOOKS[stage].append(fn)
    return fn


def run_hooks(stage: str, run: RunState) -> None:
    global _loaded
    if not _loaded:
        for module in HOOK_MODULES:
            importlib.import_module(module)
        _loaded = True
    for fn in FINETUNE_HOOKS[stage]:
        fn(run)
