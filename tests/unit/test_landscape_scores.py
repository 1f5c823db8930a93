"""The basin scores: next-token accuracy / loss for causal LMs and accuracy for classifiers, checked by hand."""

from __future__ import annotations

import pytest
import torch

from tunescope.landscape.scores import Scorer, score_kind
from tunescope.models.tiny import (
    tiny_causal_lm,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_next_token_accuracy_and_loss_match_a_hand_computation():
    texts, _ = toy_sentiment(12, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_causal_lm("llama", tok)
    assert score_kind(model) == "causal-lm"
    enc = tok(texts, padding=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    scorer = Scorer("causal-lm", [batch])
    with torch.no_grad():
        logits = model(**batch).logits
    hits = total = 0
    for b in range(len(texts)):
        n = int(batch["attention_mask"][b].sum())  # right padding: the first n tokens are real
        for t in range(n - 1):
            hits += int(logits[b, t].argmax() == batch["input_ids"][b, t + 1])
            total += 1
    assert scorer.score(model) == pytest.approx(hits / total)
    # without padding the loss is the model's own shifted cross-entropy
    full = {"input_ids": enc["input_ids"][:, :5], "attention_mask": torch.ones_like(enc["input_ids"][:, :5])}
    with torch.no_grad():
        ref = model(**full, labels=full["input_ids"]).loss
    assert float(Scorer("causal-lm", [full]).loss(model)) == pytest.approx(float(ref), rel=1e-5)


def test_classification_accuracy_pools_batches():
    texts, labels = toy_sentiment(20, 1)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("gpt2", tok)
    assert score_kind(model) == "classification"
    enc = tok(texts, padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    batches = [{"input_ids": enc["input_ids"][i:i + 8], "attention_mask": enc["attention_mask"][i:i + 8],
                "labels": y[i:i + 8]} for i in range(0, 20, 8)]  # sizes 8, 8, 4
    with torch.no_grad():
        pred = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
    assert Scorer("classification", batches).score(model) == pytest.approx(float((pred == y).float().mean()))
