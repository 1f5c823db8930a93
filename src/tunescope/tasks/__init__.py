"""Tasks: what a kind of fine-tuning owns (data, model class, evaluation). See tasks/base.py."""

from tunescope.tasks.base import TASKS, Evaluation, LoadedTask, Task
from tunescope.tasks.causal_lm import CausalLM
from tunescope.tasks.classification import SequenceClassification


def load_task(config, model_source: str | None = None, task: str = "classification") -> LoadedTask:
    """The seeded data split, model, tokenizer and tokenised splits of `config` for `task`."""
    return TASKS.get(task).load(config, model_source)


__all__ = ["TASKS", "CausalLM", "Evaluation", "LoadedTask", "SequenceClassification", "Task", "load_task"]
