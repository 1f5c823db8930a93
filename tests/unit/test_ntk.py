"""eNTK split P + F against an explicit torch.func.jacrev Jacobian on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch.func import functional_call, jacrev
from transformers import DataCollatorWithPadding

from tunescope.diagnostics.features import head_linear
from tunescope.diagnostics.ntk import (
    _SparseEmbeddingGrads,
    effective_rank,
    entk_decomposition,
    ft_ratio,
)
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


def _setup(arch: str, n: int = 6, num_labels: int = 2):
    texts, labels = toy_sentiment(n, seed=1)
    labels = [y % num_labels for y in labels]
    tok = tiny_tokenizer(texts)
    model = tiny_classifier(arch, tok, num_labels=num_labels, seed=0, num_layers=2, hidden=16, heads=2).double()
    enc = tok(texts, truncation=True, max_length=32)
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return model, tok, ds, DataCollatorWithPadding(tok)


def _jacobian(model, batch, params: dict) -> torch.Tensor:
    """Explicit Jacobian of all logits [n, C] w.r.t. `params`, flattened to [n C, p] (row index i * C + c)."""
    others = {k: v for k, v in model.named_parameters() if k not in params}
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}

    def f(p):
        return functional_call(model, {**others, **p}, args=(), kwargs=inputs).logits

    jac = jacrev(f)({k: v.detach() for k, v in params.items()})
    n, c = batch["input_ids"].shape[0], model.config.num_labels
    return torch.cat([jac[k].reshape(n * c, -1) for k in params], dim=1).detach()


@pytest.mark.parametrize("arch,sparse_embeddings", [("bert", True), ("gpt2", False)])
def test_entk_matches_jacrev(arch, sparse_embeddings, monkeypatch):
    if sparse_embeddings:  # route every embedding table through the row-sparse gradient path
        monkeypatch.setattr(_SparseEmbeddingGrads, "MIN_ROWS", 1)
    model, tok, ds, coll = _setup(arch, n=6, num_labels=3)
    res = entk_decomposition(model, ds, coll, batch_size=4, sketch_dim=None)
    assert res.exact
    batch = coll([ds[i] for i in range(len(ds))])
    lin = head_linear(model)
    head_ids = {id(p) for p in lin.parameters()}
    backbone = {k: v for k, v in model.named_parameters() if id(v) not in head_ids}
    head = {k: v for k, v in model.named_parameters() if id(v) in head_ids}
    j_f = _jacobian(model, batch, backbone)
    f_oracle = (j_f @ j_f.T).numpy()
    rel = np.linalg.norm(res.f - f_oracle) / np.linalg.norm(f_oracle)
    assert rel < 1e-4
    # P from the head's Jacobian equals its formula (<phi, phi'> + 1) I_C, and Theta = P + F.
    j_p = _jacobian(model, batch, head)
    p_oracle = (j_p @ j_p.T).numpy()
    p_formula = np.kron(res.kernel_p, np.eye(3))
    assert np.linalg.norm(p_formula - p_oracle) / np.linalg.norm(p_oracle) < 1e-4
    j_all = torch.cat([j_f, j_p], dim=1)
    theta = (j_all @ j_all.T).numpy()
    assert np.linalg.norm(p_formula + res.f - theta) / np.linalg.norm(theta) < 1e-4
    # FT ratio from the oracle kernel: F d and (P + F) d summed over samples.
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    d = (torch.nn.functional.one_hot(batch["labels"], 3).double() - logits.softmax(-1)).reshape(-1).numpy()
    fd, td = (f_oracle @ d).reshape(-1, 3), (theta @ d).reshape(-1, 3)
    expected = np.mean(np.linalg.norm(fd, axis=1) / np.linalg.norm(td, axis=1))
    assert res.ft_ratio == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(res.f_diag_exact, np.diag(f_oracle), rtol=1e-8)


def test_p_formula_and_ranks():
    model, tok, ds, coll = _setup("bert", n=5)
    res = entk_decomposition(model, ds, coll, sketch_dim=None)
    # P built from phi with the bias term: K_P = Phi Phi^T + 1, symmetric PSD; rank of P = C * rank(K_P).
    assert np.allclose(res.kernel_p, res.kernel_p.T)
    assert res.stats["pre_train_rank"] == 2 * np.linalg.matrix_rank(res.kernel_p, hermitian=True)
    assert res.stats["pre_train_effective_rank"] == pytest.approx(2 * effective_rank(res.kernel_p), rel=1e-6)


def test_count_sketch_is_close_to_exact(monkeypatch):
    monkeypatch.setattr(_SparseEmbeddingGrads, "MIN_ROWS", 1)
    model, tok, ds, coll = _setup("llama", n=4)
    exact = entk_decomposition(model, ds, coll, sketch_dim=None)
    sketched = entk_decomposition(model, ds, coll, sketch_dim=16384, exact_budget_bytes=0, seed=3)
    assert not sketched.exact
    # Exact parts do not depend on the sketch.
    assert sketched.ft_ratio == pytest.approx(exact.ft_ratio, rel=1e-9)
    rel = np.linalg.norm(sketched.f - exact.f) / np.linalg.norm(exact.f)
    assert rel < 5 * np.sqrt(2 / 16384)
    assert sketched.stats["sketch_diag_rel_error"] < 5 * np.sqrt(2 / 16384)
    ratio_only = entk_decomposition(model, ds, coll, matrix=False)
    assert ratio_only.f is None and ratio_only.ft_ratio == pytest.approx(exact.ft_ratio, rel=1e-9)
    np.testing.assert_allclose(ratio_only.f_diag_exact, np.diag(exact.f), rtol=1e-8)


def test_effective_rank_and_ratio_formulas():
    assert effective_rank(np.eye(4)) == pytest.approx(4.0)
    assert effective_rank(np.diag([1.0, 0, 0])) == pytest.approx(1.0)
    pd = np.array([[3.0, 0.0], [0.0, 1.0]])
    fd = np.array([[0.0, 4.0], [0.0, 1.0]])
    assert ft_ratio(pd, fd) == pytest.approx((4 / 5 + 1 / 2) / 2)
