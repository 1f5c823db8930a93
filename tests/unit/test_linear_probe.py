"""Linear probe: separable features are fitted perfectly; the installed head reproduces sklearn's probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from scipy.special import softmax
from transformers import DataCollatorWithPadding

from tunescope.diagnostics.features import extract_features, head_norm
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment
from tunescope.strategies.linear_probe import (
    fit_linear_probe,
    install_head,
    linear_probe,
    standardized_probe_accuracy,
)


def _blobs(n_per_class: int, num_classes: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 6.0
    x = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(num_classes), n_per_class)
    return x, y


@pytest.mark.parametrize("num_classes", [2, 4])
def test_lp_on_separable_features_reaches_100_percent(num_classes):
    x, y = _blobs(40, num_classes, 8, seed=0)
    fit = fit_linear_probe(x, y, num_classes, cs=4, cv=3, max_iter=300, seed=0)
    assert fit.train_accuracy == 1.0
    xt, yt = _blobs(40, num_classes, 8, seed=0)  # same centres (same seed), fresh noise below
    rng = np.random.default_rng(9)
    xt = xt + rng.normal(scale=0.1, size=xt.shape)
    assert ((xt @ fit.weight.T + fit.bias).argmax(1) == yt).mean() == 1.0
    assert fit.weight.shape == (num_classes, 8)


def test_binary_head_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    fit = fit_linear_probe(x, y, 2, seed=0)
    ref = LogisticRegression(C=fit.strength, max_iter=5000, tol=1e-10).fit(x, y)
    ours = softmax(x @ fit.weight.T + fit.bias, axis=1)
    np.testing.assert_allclose(ours, ref.predict_proba(x), atol=1e-4)
    # Minimum-norm split: the two rows are opposite.
    np.testing.assert_allclose(fit.weight[0], -fit.weight[1])


def test_installed_head_gives_probe_logits_and_grows_head_norm():
    texts, labels = toy_sentiment(80, seed=2)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok, seed=0)
    enc = tok(texts, truncation=True, max_length=32)
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    coll = DataCollatorWithPadding(tok)
    phi, y = extract_features(model, ds, coll)
    facts = linear_probe(model, ds, coll, 2, seed=0)
    assert facts["head_norm_after_lp"] == pytest.approx(head_norm(model))
    assert facts["head_norm_after_lp"] > facts["head_norm_init"]  # CE drives ||V|| up on a learnable task
    batch = coll([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    w, b = model.classifier.weight.detach(), model.classifier.bias.detach()
    torch.testing.assert_close(logits, phi @ w.T + b, atol=1e-4, rtol=1e-4)
    fit = fit_linear_probe(phi.numpy(), y.numpy(), 2, seed=0)
    np.testing.assert_allclose(w.numpy(), fit.weight, rtol=1e-3, atol=1e-3)
    assert facts["lp_train_accuracy"] == pytest.approx(fit.train_accuracy)


def test_install_head_rejects_wrong_shape():
    texts, _ = toy_sentiment(8)
    model = tiny_classifier("bert", tiny_tokenizer(texts))
    with pytest.raises(ValueError):
        install_head(model, np.zeros((3, 32)), np.zeros(3))


def test_standardized_probe_accuracy_equals_a_direct_sklearn_fit():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6))
    y = (x @ rng.normal(size=6) + rng.normal(scale=2.0, size=300) > 0).astype(int)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)).fit(x[:200], y[:200])
    got = standardized_probe_accuracy(x[:200], y[:200], x[200:], y[200:])
    assert got == ref.score(x[200:], y[200:])
    assert 0.5 < got < 1.0  # a noisy task: the probe is informative but not perfect
    xs, ys = _blobs(30, 2, 4, seed=0)
    assert standardized_probe_accuracy(xs, ys, xs, ys) == 1.0


def test_a_shared_memo_fits_the_probe_once_and_installs_the_same_head(monkeypatch):
    """The plan's trials share StrategyContext.memo: the second LP candidate gets the first one's fit, bit for bit."""
    import copy
    from types import SimpleNamespace

    import tunescope.strategies.linear_probe as lp
    from tunescope.strategies.base import StrategyContext

    texts, labels = toy_sentiment(60, seed=4)
    tok = tiny_tokenizer(texts)
    pristine = tiny_classifier("bert", tok, seed=0)
    enc = tok(texts, truncation=True, max_length=32)
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    fits = []
    monkeypatch.setattr(lp, "fit_linear_probe", lambda *a, **k: fits.append(1) or fit_linear_probe(*a, **k))
    config = SimpleNamespace(lp_cs=4, lp_cv=3, seed=0, eval_batch_size=16)
    memo: dict = {}
    heads, facts = [], []
    for _ in range(2):
        model = copy.deepcopy(pristine)
        ctx = StrategyContext(config=config, tokenizer=tok, data=SimpleNamespace(num_labels=2),
                              tokenized={"train": ds}, collator=DataCollatorWithPadding(tok), memo=memo)
        facts.append(lp.lp_stage(model, ctx))
        heads.append((model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()))
    assert len(fits) == 1  # fitted once
    assert torch.equal(heads[0][0], heads[1][0]) and torch.equal(heads[0][1], heads[1][1])
    assert facts[0] == facts[1]
    assert not torch.equal(heads[0][0], pristine.classifier.weight)  # a head was really installed
