"""The whole basin measurement (landscape/basins.py) driven by plain BasinOptions, no recipe involved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunescope.errors import UserError
from tunescope.landscape.basins import measure_basin, radius_quantiles
from tunescope.landscape.directions import select_scope
from tunescope.landscape.options import BasinOptions
from tunescope.landscape.scores import Scorer
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quantiles_are_numpys_linear_quantiles():
    radii = [0.3, 0.1, 0.7, 0.2, 0.5]
    q = radius_quantiles(radii)
    assert list(q) == ["q10", "q25", "q50", "q75", "q90"]
    for key, p in zip(q, (0.1, 0.25, 0.5, 0.75, 0.9), strict=True):
        assert q[key] == pytest.approx(float(np.quantile(radii, p)))


@pytest.mark.parametrize("key,value", [("directions", ["random", "bogus"]), ("num_directions", 0), ("tau", -1.0),
                                       ("rtol", 1.5), ("curve_points", 2), ("confidence", 1.0)])
def test_bad_options_name_the_key(key, value):
    with pytest.raises(UserError, match=key):
        BasinOptions(**{key: value})


def test_measure_basin_fills_the_documented_block_and_leaves_the_weights_alone():
    texts, labels = toy_sentiment(48, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok, seed=0)
    enc = tok(texts, padding=True, return_tensors="pt")
    scorer = Scorer("classification", [{"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                                         "labels": torch.tensor(labels)}])
    scope = select_scope(model, "all")
    base = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    options = BasinOptions(directions=["random", "worst", "sft"], num_directions=2, worst_steps=1, worst_batches=1,
                           curve_points=5, certify_sigma=1e-3, certify_draws=4, tau=0.1)
    basin = measure_basin(model, scorer, scope, options, base_params=base, chance=0.5)

    assert basin["direction_types"] == ["random", "worst", "sft"] and basin["dim"] == scope.dim
    assert basin["threshold"] == pytest.approx(basin["score"] - 0.1)
    for kind, m in (("random", 2), ("worst", 1), ("sft", 1)):
        b = basin[kind]
        assert len(b["radii"]) == m and b["radii"] == [min(p, n) for p, n in zip(b["radii_positive"],
                                                                                 b["radii_negative"], strict=True)]
        assert b["quantiles"] == radius_quantiles(b["radii"]) and 0 <= b["cp_lower_bound"] <= b["fraction_inside"]
    assert len(basin["worst"]["ascent_loss"]) == 1 and basin["sft"]["base_scale"] < 0
    assert basin["curves"]["random"]["scores"][0][2] == pytest.approx(basin["score"])  # a = 0 is theta
    assert basin["certified_radius"] == basin["certificate"]["radius"] and basin["certificate"]["q"] == 0.5
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_sft_without_base_weights_is_a_user_error():
    texts, labels = toy_sentiment(16, 0)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok, seed=0)
    enc = tok(texts, padding=True, return_tensors="pt")
    scorer = Scorer("classification", [{**enc, "labels": torch.tensor(labels)}])
    with pytest.raises(UserError, match="--base"):
        measure_basin(model, scorer, select_scope(model, "all"), BasinOptions(directions=["sft"]))
