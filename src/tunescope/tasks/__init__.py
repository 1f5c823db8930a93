"""Tasks: what a kind of fine-tuning owns (data, model class, evaluation). See tasks/base.py.

Names are resolved on first use (PEP 562), and reading one imports the task modules (which register themselves in
TASKS) first: importing tasks.options (TaskOptions, which the CLI builds flags from) must not load torch through
this file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunescope.tasks.base import LoadedTask

# public name -> the module defining it
_EXPORTS: dict[str, str] = {
    "TASKS": "tunescope.tasks.base", "Evaluation": "tunescope.tasks.base", "LoadedTask": "tunescope.tasks.base",
    "Task": "tunescope.tasks.base",
    "CausalLM": "tunescope.tasks.causal_lm",
    "SequenceClassification": "tunescope.tasks.classification",
}

# The modules that register a task, in registration order.
TASK_MODULES: tuple[str, ...] = ("tunescope.tasks.causal_lm", "tunescope.tasks.classification")

__all__ = ["TASKS", "CausalLM", "Evaluation", "LoadedTask", "SequenceClassification", "Task", "load_task"]


def _registered_tasks():
    """TASKS with every task module imported (each registers its task on import)."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return importlib.import_module("tunescope.tasks.base").TASKS


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _registered_tasks()
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # cache: the next read is a plain attribute
    return value


def load_task(config, model_source: str | None = None, task: str = "classification") -> LoadedTask:
    """The seeded data split, model, tokenizer and tokenised splits of `config` for `task`."""
    return _registered_tasks().get(task).load(config, model_source)
