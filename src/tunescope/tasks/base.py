"""The Task protocol: what a kind of fine-tuning (classification now; causal-LM SFT next) owns.

A task owns data loading, the model class, tokenisation and collation, and evaluation (the score it reports).
Strategies, diagnostics and the landscape take a model and batches and never ask which task made them; the
recipes ask the task.

    name              registry name ("classification", ...)
    peft_task_type    the peft TaskType its models use (LoRA wraps them accordingly)
    has_head          True when the model ends in a task head that strategies may fit (linear probe)
    load(config, model_source=None) -> LoadedTask     seeded data split, model, tokenizer, tokenised splits
    evaluate(model, loaded, split, batch_size) -> Evaluation    metrics + raw predictions of one split
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import nn

from tunescope.registry import Registry


@dataclass
class LoadedTask:
    """data: the task's splits (e.g. ClassificationData); tokenized: split -> datasets.Dataset."""

    data: Any
    model: nn.Module
    tokenizer: Any
    tokenized: dict
    collator: Any


@dataclass
class Evaluation:
    """metrics: flat name -> number (accuracy, nll, ...); arrays: raw predictions to save (e.g. logits, labels)."""

    metrics: dict[str, float]
    arrays: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    name: str
    peft_task_type: str
    has_head: bool

    def load(self, config: Any, model_source: str | None = None) -> LoadedTask: ...

    def evaluate(self, model: nn.Module, loaded: LoadedTask, split: str, batch_size: int) -> Evaluation: ...


def _check_task(name: str, task: object) -> None:
    if not isinstance(task, Task):
        raise TypeError(f"task {name!r} does not implement the Task protocol (name, peft_task_type, has_head, "
                        "load, evaluate)")


TASKS: Registry[Task] = Registry("task", check=_check_task)
