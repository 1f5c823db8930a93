"""SFTConfig: what defines a `tunescope sft` run, apart from its recipe (experiments/sft.py).

Light on purpose: the standard library and the option groups only (the strategy registry is imported inside
refuse_head_strategy), so the CLI builds `tunescope sft --help` from this class without loading torch, trl or
transformers. experiments/sft.py re-exports it: `from tunescope.experiments.sft import SFTConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunescope.config import check
from tunescope.diagnostics.options import ProbeOptions
from tunescope.errors import UserError
from tunescope.strategies.options import LoraOptions
from tunescope.strategies.sift.config import SiftOptions
from tunescope.tasks.options import TaskOptions
from tunescope.training.diagnostics_addon import DiagnosticsOptions
from tunescope.training.options import NoiseOptions, TrainingOptions


@dataclass
class SFTConfig(DiagnosticsOptions, NoiseOptions, SiftOptions, ProbeOptions, LoraOptions, TrainingOptions,
                TaskOptions):
    """Everything that defines an SFT run (saved as the run's config.yaml).

    Composed from the option groups (task, Trainer, LoRA, SIFT, probe batches, GO noise, diagnostics); model, data
    and max_length keep their declaration in TaskOptions and only get SFT defaults here.
    """

    model: str = "smollm2-135m"
    """Model: a decoder (causal LM): a named asset (smollm2-135m), a local folder, or a hub id."""
    data: str = "quartz"
    """SFT data: a named asset (quartz) or a local jsonl/json/csv/parquet file with a `messages` column,
    `prompt` + `completion` columns, or a text column (optional `choices`: candidate answers)."""
    max_length: int = 256
    """Maximum tokens per sequence: a longer completion is cut; an example whose prompt fills it is dropped
    (counted in results.json)."""
    strategy: str = "lora"
    """Fine-tuning strategy: full, lora, lora-inflection or sift (the classification-head ones are refused)."""
    completion_only_loss: bool = True
    """Loss on the completion / assistant tokens only (false: on every token of each sequence)."""
    chat_template: str | None = None
    """A Jinja chat-template file to use instead of the tokenizer's (e.g. one with {% generation %} markers)."""
    packing: bool = False
    """Pack the training sequences into max_length-token rows (trl's best-fit packing, no padding)."""
    answer_max_new_tokens: int = 8
    """Greedy-generation budget (tokens) of an answer, for task accuracy on data with choices."""
    eval_before: bool = False
    """Also evaluate the pre-trained model on the test split (results.json `eval_before`)."""
    retention_docs: int = 0
    """Forgetting check: perplexity and next-token accuracy of this many held-out documents of retention_data before
    and after training (results.json `retention`; 0: off)."""
    retention_data: str = "news_text"
    """Plain-text corpus of the forgetting check: a named corpus (news_text) or a local csv/jsonl/txt file."""

    def validate(self) -> None:
        refuse_head_strategy(self.strategy)
        check(self.retention_docs >= 0, "retention_docs", self.retention_docs, "an integer >= 0 (0: off)")
        check(self.answer_max_new_tokens >= 1, "answer_max_new_tokens", self.answer_max_new_tokens,
              "a positive integer")
        check(self.chat_template is None or Path(self.chat_template).expanduser().is_file(), "chat_template",
              self.chat_template, "an existing Jinja template file")
        check(self.label_column is None, "label_column", self.label_column,
              "nothing: SFT data has no labels (formats: messages, prompt + completion, text)")


def refuse_head_strategy(name: str) -> None:
    """UserError for an unknown strategy (did-you-mean) or one that fits a classification head."""
    # Imported here: the strategies load torch and peft, which building --help must not.
    from tunescope.strategies import STRATEGIES

    strategy = STRATEGIES.get(name)
    if strategy.needs_head:
        usable = ", ".join(n for n in STRATEGIES.names() if not STRATEGIES.get(n).needs_head)
        raise UserError(f"bad value {name!r} for strategy: it fits a classification head, and a causal LM has none "
                        f"(SFT trains the language model itself); use one of {usable}")
