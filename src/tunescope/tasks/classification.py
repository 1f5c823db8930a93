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

# A classifier that gives one class to at least COLLAPSE_SHARE of the evaluated examples has collapsed onto that
# class, unless the labels themselves are that skewed (then predicting the majority is what the data allows).
COLLAPSE_SHARE = 0.95


def _label(names: list[str] | None, c: int) -> str:
    return names[c] if names and 0 <= c < len(names) else str(c)


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray,
                      label_names: list[str] | None = None) -> dict:
    """The majority-class baseline, the bar a classifier must clear: the most frequent training class m
    (ties: the lowest class id), and accuracy = mean(y_test == m), the test accuracy of always predicting m."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = int(values[counts.argmax()])
    return {"majority_class": majority, "majority_label": _label(label_names, majority),
            "accuracy": float((np.asarray(test_labels) == majority).mean())}


def top_share(values: np.ndarray) -> tuple[int, float]:
    """(most frequent value c, its share count(c) / N) of a non-empty integer array."""
    found, counts = np.unique(np.asarray(values), return_counts=True)
    i = int(counts.argmax())
    return int(found[i]), float(counts[i] / counts.sum())


def collapse_warning(predictions: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None,
                     split: str = "test", threshold: float = COLLAPSE_SHARE) -> dict | None:
    """A "collapse" warning when the classifier predicts one class for >= threshold of the examples
    (predicted_share) while the true labels' most frequent class holds < threshold of them (majority_share);
    None otherwise (a healthy spread of predictions, or data that really is that skewed)."""
    if len(labels) == 0:
        return None
    predicted, predicted_share = top_share(predictions)
    _, majority_share = top_share(labels)
    if predicted_share < threshold or majority_share >= threshold:
        return None
    name = _label(label_names, predicted)
    message = (f"the model collapsed to one class: it predicts {name!r} for {100 * predicted_share:.1f}% of the "
               f"{split} set ({len(predictions)} examples) while its most frequent class is only "
               f"{100 * majority_share:.1f}% of it, so its score is that of a near-constant guess; check the learning "
               f"rate, the number of steps and the labels")
    return {"kind": "collapse", "split": split, "predicted_class": predicted, "predicted_label": name,
            "predicted_share": predicted_share, "majority_share": majority_share, "message": message}


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

    def sanity_checks(self, loaded: LoadedTask, evaluation: Evaluation, split: str = "test") -> dict:
        """What a result needs beside its score to be trusted: {"baseline": the majority-class baseline on
        `split` (majority_baseline, from the training labels), "warnings": [collapse_warning, if any]}."""
        labels, logits = evaluation.arrays["labels"], evaluation.arrays["logits"]
        names = getattr(loaded.data, "label_names", None)
        baseline = majority_baseline(loaded.data.train["label"], labels, names)
        warning = collapse_warning(np.asarray(logits).argmax(axis=1), labels, names, split)
        return {"baseline": baseline, "warnings": [warning] if warning else []}


TASKS.register("classification", SequenceClassification())
