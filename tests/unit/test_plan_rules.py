"""The plan's decision rules on synthetic measurement tables: each fires where it should, and only there."""

from __future__ import annotations

import math

import pytest

from tunescope.errors import UserError
from tunescope.planning.options import PlanOptions, parse_budget_params
from tunescope.planning.rules import (
    BASE_PRIORITY,
    GRADIENT_SPREAD,
    QUASI_SPARSE_SHARE,
    SATURATED_SHARE,
    SEPARABLE_GAIN,
    Candidate,
    decide,
)

PARAMS = {"full": 1000, "lp-ft": 1000, "lora": 50, "lp-lora": 50, "lora-inflection": 20, "sift": 40, "head": 10}


def measurements(*, saturated=0.0, spread=1.0, lp=0.75, majority=0.5, top_share=0.3, budget=None):
    """A measurement table like planning.measure.measure returns (only the keys the rules read)."""
    grads = [1e-4 * spread ** (i / 5) for i in range(6)]  # max/min = spread
    return {
        "layers": {"layers": [{"layer": i, "act_grad_norm": g} for i, g in enumerate(grads)],
                   "inflection_layers": [1, 2]},
        "saturation": {"saturated_share": saturated, "mean_max_prob": 0.5, "mean_error_signal": 0.5},
        "features": {"accuracy": lp, "majority_accuracy": majority, "validation_examples": 200,
                     "head_norm_growth": 12.0},
        "sparsity": {"fraction": 0.01, "top_share": top_share, "num_params": 10_000},
        "budget_params": budget, "total_params": 1000,
    }


def pool_of(**m):
    cands = [Candidate(n, {}, p, BASE_PRIORITY[n]) for n, p in PARAMS.items()]
    return decide(measurements(**m), cands)


def fired(pool) -> set[str]:
    return {f["name"] for f in pool.fired}


def rejected(pool) -> dict[str, str]:
    return {r["strategy"]: r["rule"] for r in pool.rejected}


def test_no_suppression_rejects_the_band_and_keeps_lora_everywhere():
    pool = pool_of(saturated=0.0, spread=2.0)
    assert "no-gradient-suppression" in fired(pool)
    assert rejected(pool)["lora-inflection"] == "no-gradient-suppression"
    assert "lora" in pool.candidates


@pytest.mark.parametrize("saturated,spread", [(SATURATED_SHARE, 1.0), (0.0, math.exp(GRADIENT_SPREAD) * 1.01)])
def test_suppression_by_saturation_or_spread_keeps_and_promotes_the_band(saturated, spread):
    pool = pool_of(saturated=saturated, spread=spread)
    assert "gradient-suppression" in fired(pool)
    assert "lora-inflection" in pool.candidates
    assert pool.candidates["lora-inflection"].priority == BASE_PRIORITY["lora-inflection"] + 2.0


def test_separable_features_promote_lp_strategies():
    pool = pool_of(lp=0.5 + SEPARABLE_GAIN + 1e-9, majority=0.5)
    assert "separable-features" in fired(pool)
    assert pool.ranked()[0].strategy == "lp-ft"
    assert pool.candidates["lp-lora"].priority > BASE_PRIORITY["lp-lora"]


def test_inseparable_features_reject_head_and_demote_lp_strategies():
    pool = pool_of(lp=0.51, majority=0.5)
    assert "inseparable-features" in fired(pool)
    assert {s for s, r in rejected(pool).items() if r == "inseparable-features"} == {"head"}
    assert pool.candidates["lp-ft"].priority == BASE_PRIORITY["lp-ft"] - 1.0


def test_in_between_features_fire_no_feature_rule():
    pool = pool_of(lp=0.55, majority=0.5)
    assert not fired(pool) & {"separable-features", "inseparable-features"}


def test_sparsity_rule_promotes_or_demotes_sift():
    sparse = pool_of(top_share=QUASI_SPARSE_SHARE)
    assert sparse.candidates["sift"].priority == BASE_PRIORITY["sift"] + 0.5 and "quasi-sparse-gradient" in fired(sparse)
    dense = pool_of(top_share=QUASI_SPARSE_SHARE - 0.01)
    # demoted, never rejected: a dense gradient did not stop SIFT from winning a suite cell
    assert dense.candidates["sift"].priority == BASE_PRIORITY["sift"] - 1.0 and "dense-gradient" in fired(dense)
    assert "sift" not in rejected(dense)


def test_parameter_budget_rejects_every_candidate_over_it():
    pool = pool_of(budget=45)
    assert all(c.trainable_params <= 45 for c in pool.candidates.values())
    assert {s for s, r in rejected(pool).items() if r == "parameter-budget"} == {"full", "lp-ft", "lora", "lp-lora"}


def test_trials_only_ablation_applies_the_budget_but_no_other_rule():
    cands = [Candidate(n, {}, p, BASE_PRIORITY[n]) for n, p in PARAMS.items()]
    pool = decide(measurements(budget=45, saturated=0.0, top_share=0.0), cands, use_rules=False)
    assert fired(pool) == {"parameter-budget"}
    assert set(pool.candidates) == {"lora-inflection", "sift", "head"}


def test_ranking_breaks_ties_by_fewer_trainable_parameters():
    pool = pool_of(lp=0.55, top_share=0.0)  # full and lora both at priority 3
    order = [c.strategy for c in pool.ranked()]
    assert order.index("lora") < order.index("full")


@pytest.mark.parametrize("text,expected", [("1%", ("fraction", 0.01)), ("0.5%", ("fraction", 0.005)),
                                           ("120000", ("count", 120000.0)), (None, None)])
def test_budget_parsing(text, expected):
    assert parse_budget_params(text) == expected


@pytest.mark.parametrize("text", ["0%", "150%", "abc", "1.5", "-3"])
def test_bad_budget_is_a_user_error(text):
    with pytest.raises(UserError, match="budget_params"):
        PlanOptions(budget_params=text)
