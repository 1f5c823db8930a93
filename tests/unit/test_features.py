"""phi(x) per architecture, head norm and feature change, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, TaskType, get_peft_model
from transformers import DataCollatorWithPadding

from tunescope.diagnostics.features import (
    extract_features,
    feature_change,
    head_linear,
    head_norm,
)
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


def _data(n=10):
    texts, labels = toy_sentiment(n, seed=3)
    tok = tiny_tokenizer(texts)
    enc = tok(texts, truncation=True, max_length=32)
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return tok, ds, DataCollatorWithPadding(tok)


def _padded(tok, ds):
    return DataCollatorWithPadding(tok)([ds[i] for i in range(len(ds))])


def test_bert_features_are_the_pooler_output_and_logits_are_linear_in_them():
    tok, ds, coll = _data()
    model = tiny_classifier("bert", tok, num_labels=3)
    phi, labels = extract_features(model, ds, coll, batch_size=4)
    batch = _padded(tok, ds)
    with torch.no_grad():
        pooled = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(phi, pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(phi @ model.classifier.weight.T + model.classifier.bias, logits, atol=1e-5, rtol=1e-5)
    assert labels.tolist() == ds["labels"]
    assert head_linear(model) is model.classifier


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decoder_features_are_last_non_pad_hidden_state_after_final_norm(arch):
    tok, ds, coll = _data()
    model = tiny_classifier(arch, tok, num_labels=2)
    phi, _ = extract_features(model, ds, coll, batch_size=3)
    # Independent: each text alone (no padding), final hidden state (after the final norm) of its last token.
    base = model.transformer if arch == "gpt2" else model.model
    for i in range(len(ds)):
        ids = torch.tensor([ds[i]["input_ids"]])
        with torch.no_grad():
            hidden = base(input_ids=ids).last_hidden_state[0, -1]
        torch.testing.assert_close(phi[i], hidden, atol=1e-5, rtol=1e-4)
    assert head_linear(model) is model.score and model.score.bias is None


def test_head_norm_and_peft_wrapped_head():
    tok, ds, coll = _data()
    model = tiny_classifier("bert", tok)
    expected = float(torch.linalg.matrix_norm(model.classifier.weight.detach()))
    assert head_norm(model) == pytest.approx(expected)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["query", "value"], task_type=TaskType.SEQ_CLS))
    lin = head_linear(peft_model)
    assert lin.weight.requires_grad  # the trainable copy inside modules_to_save, not the frozen original
    with torch.no_grad():
        lin.weight.mul_(3.0)
    assert head_norm(peft_model) == pytest.approx(3 * expected, rel=1e-6)
    phi, _ = extract_features(peft_model, ds, coll)
    assert phi.shape == (len(ds), 32)


def test_feature_change_hand_values():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    fc = feature_change(a, b)
    assert fc["cosine"] == pytest.approx((0.0 + 1.0) / 2)
    assert fc["l2"] == pytest.approx((2**0.5 + 2.0) / 2)
    same = feature_change(a, a.clone())
    assert same["cosine"] == pytest.approx(1.0) and same["l2"] == 0.0


def test_features_come_back_in_dataset_order_although_batches_are_length_sorted():
    tok, ds, coll = _data(12)
    lengths = [len(ids) for ids in ds["input_ids"]]
    assert len(set(lengths)) > 2 and lengths != sorted(lengths)  # the sort really reorders this data
    model = tiny_classifier("bert", tok, num_labels=2)
    phi, labels = extract_features(model, ds, coll, batch_size=5)
    one_by_one = torch.cat([extract_features(model, ds.select([i]), coll, batch_size=1)[0] for i in range(len(ds))])
    torch.testing.assert_close(phi, one_by_one, atol=1e-5, rtol=1e-4)
    assert labels.tolist() == ds["labels"]


def test_predicted_logits_come_back_in_dataset_order():
    from tunescope.training.evaluate import predict_logits

    tok, ds, coll = _data(12)
    model = tiny_classifier("bert", tok, num_labels=2)
    logits, labels = predict_logits(model, ds, coll, batch_size=5)
    model.eval()
    with torch.no_grad():
        one_by_one = torch.cat([model(**{k: torch.tensor([ds[i][k]]) for k in ("input_ids", "attention_mask")}).logits
                                for i in range(len(ds))])
    np.testing.assert_allclose(logits, one_by_one.double().numpy(), atol=1e-5, rtol=1e-4)
    assert labels.tolist() == ds["labels"]
