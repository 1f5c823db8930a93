"""The fields every task-based command shares (model, data, columns, length, limit, seed), declared once.

Commands compose their config from this group and others (training.options.TrainingOptions,
strategies.lora.LoraOptions, ...); a field is documented and validated here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check


@dataclass
class ModelOptions(Options):
    """Which model, and whether its repository may run code."""

    model: str = "minilm-l6"
    """Model: a named asset (minilm-l6, smollm2-135m), a local folder, or a hub id."""
    trust_remote_code: bool = False
    """Allow model repositories to run their own code (off unless you trust the source)."""


@dataclass
class DataOptions(Options):
    """Which data, which columns, how many examples, how long, which seed."""

    data: str = "rotten_tomatoes"
    """Data: a named asset (rotten_tomatoes, tweets_sentiment), a local csv/tsv/jsonl/json/parquet file, or a hub id."""
    text_column: str | None = None
    """Text column of a local or hub data set (default: text / sentence / review / content)."""
    label_column: str | None = None
    """Label column of a local or hub data set (default: label / labels / category / sentiment)."""
    max_length: int = 64
    """Maximum tokens per example (longer texts are truncated)."""
    limit: int | None = None
    """Cap on examples per split (train, validation, test)."""
    seed: int = 0
    """Seed for splits, initialisation, data order and dropout."""

    def validate(self) -> None:
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        check(self.limit is None or self.limit >= 1, "limit", self.limit, "a positive integer")


@dataclass
class TaskOptions(DataOptions, ModelOptions):
    """A model and the data it is trained or measured on: what `tasks.load_task` needs."""
