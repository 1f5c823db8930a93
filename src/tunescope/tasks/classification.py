"""Sequence classification: text -> one of C labels, scored by accuracy and NLL of the softmax over the logits.

`load` is the one seeded path from a config to a model and its tokenised splits, so `finetune`, `diagnose`,
`ntk` and `sparsity` see exactly the same examples for the same (data, seed, limit, max_length) and their
results can be put side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from tunescope.tasks.base import TASKS, Evaluation, LoadedTask


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> dict:
    """Accuracy of always predicting the most frequent training class: the bar a classifier must clear."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = int(values[counts.argmax()])
    return {"majority_class": majority, "accuracy": float((np.asarray(test_labels) == majority).mean())}


class SequenceClassification:
    name = "classification"
    peft_task_type = "SEQ_CLS"
    has_head = True

    def load(self, config: Any, model_source: str | None = None) -> LoadedTask:
        """set_seed(config.seed); load `config.data` (seeded split, `limit`); load the classifier `model_source`
        (default `config.model`) with the data's labels; tokenise every split to `config.max_length` tokens.

        `config` is any config holding tasks.options.TaskOptions.
        """
        from transformers import set_seed

        from tunescope.data import load_classification
        from tunescope.data.tokenize import collator, tokenize_classification
        from tunescope.models.load import load_classifier

        set_seed(config.seed)
        data = load_classification(config.data, text_column=config.text_column, label_column=config.label_column,
                                   seed=config.seed, limit=config.limit)
        model, tokenizer = load_classifier(model_source or config.model, data.num_labels,
                                           label_names=data.label_names, trust_remote_code=config.trust_remote_code)
        tokenized = tokenize_classification(data, tokenizer, config.max_length)
        return LoadedTask(data=data, model=model, tokenizer=tokenizer, tokenized=tokenized,
                          collator=collator(tokenizer))

    def evaluate(self, model: nn.Module, loaded: LoadedTask, split: str, batch_size: int) -> Evaluation:
        """accuracy = mean(argmax_c logits == y), nll = mean(-log softmax(logits)_y) on one split."""
        from tunescope.training.evaluate import classification_metrics, predict_logits

        logits, labels = predict_logits(model, loaded.tokenized[split], loaded.collator, batch_size,
                                        desc=f"eval {split}")
        return Evaluation(classification_metrics(logits, labels), {"logits": logits, "labels": labels})


TASKS.register("classification", SequenceClassification())
