"""The classification task every recipe starts from: seeded split of the data, a classifier with matching labels,
and the tokenised splits.

One function, so that `finetune`, `diagnose`, `ntk` and `sparsity` see exactly the same examples for the same
(data, seed, limit, max_length): their results can then be put side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ClassificationTask:
    """data: ClassificationData (train / validation / test, label names); tokenized: split -> datasets.Dataset."""

    data: Any
    model: Any
    tokenizer: Any
    tokenized: dict


def load_task(config, model_source: str | None = None) -> ClassificationTask:
    """set_seed(config.seed); load `config.data` (seeded split, `limit`); load the classifier `model_source`
    (default `config.model`) with the data's labels; tokenise every split to `config.max_length` tokens.

    `config` is any recipe config with the fields model, data, text_column, label_column, seed, limit, max_length
    (and optionally trust_remote_code).
    """
    from transformers import set_seed

    from tunescope.data import load_classification
    from tunescope.data.tokenize import tokenize_classification
    from tunescope.models.load import load_classifier

    set_seed(config.seed)
    data = load_classification(config.data, text_column=config.text_column, label_column=config.label_column,
                               seed=config.seed, limit=config.limit)
    model, tokenizer = load_classifier(model_source or config.model, data.num_labels, label_names=data.label_names,
                                       trust_remote_code=getattr(config, "trust_remote_code", False))
    tokenized = tokenize_classification(data, tokenizer, config.max_length)
    return ClassificationTask(data=data, model=model, tokenizer=tokenizer, tokenized=tokenized)
