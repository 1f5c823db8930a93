"""Clopper-Pearson bounds and the certified radius against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tunescope.errors import UserError
from tunescope.landscape.bounds import (
    bernoulli_from_scores,
    certified_radius,
    certify,
    clopper_pearson_lower,
    clopper_pearson_upper,
    fraction_inside_bound,
)


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (7, 10), (10, 10), (45, 50), (500, 1000)])
def test_clopper_pearson_equals_beta_quantiles_and_inverts_the_binomial(k, n):
    lo, hi = clopper_pearson_lower(k, n, 0.95), clopper_pearson_upper(k, n, 0.95)
    assert lo == (0.0 if k == 0 else pytest.approx(stats.beta.ppf(0.05, k, n - k + 1)))
    assert hi == (1.0 if k == n else pytest.approx(stats.beta.ppf(0.95, k + 1, n - k)))
    # Independent definition: the lower bound L solves P(X >= k | n, L) = alpha.
    if k > 0:
        assert stats.binom.sf(k - 1, n, lo) == pytest.approx(0.05, rel=1e-6)
    if k < n:
        assert stats.binom.cdf(k, n, hi) == pytest.approx(0.05, rel=1e-6)
    assert lo <= k / n <= hi


def test_known_textbook_values():
    # 10 of 10 successes: lower bound = alpha^(1/n); 0 of n: upper = 1 - alpha^(1/n).
    assert clopper_pearson_lower(10, 10, 0.95) == pytest.approx(0.05 ** 0.1)
    assert clopper_pearson_upper(0, 20, 0.95) == pytest.approx(1 - 0.05 ** (1 / 20))


def test_fraction_inside_counts_directions():
    radii = [0.1, 0.2, 0.3, 0.4, 0.5]
    out = fraction_inside_bound(radii, 0.25, 0.9)
    assert out["inside"] == 3 and out["n"] == 5 and out["fraction"] == pytest.approx(0.6)
    assert out["cp_lower_bound"] == pytest.approx(stats.beta.ppf(0.1, 3, 3))
    with pytest.raises(UserError):
        fraction_inside_bound([], 0.1)


def test_certified_radius_formula():
    sigma, q = 0.02, 0.5
    assert certified_radius(0.9, q, sigma) == pytest.approx(sigma * (stats.norm.ppf(0.9) - stats.norm.ppf(0.5)))
    assert certified_radius(0.4, q, sigma) == 0.0
    # monotone in p_A and in sigma
    assert certified_radius(0.95, q, sigma) > certified_radius(0.9, q, sigma)
    assert certified_radius(0.9, q, 2 * sigma) == pytest.approx(2 * certified_radius(0.9, q, sigma))


def test_bernoulli_rounding_is_unbiased_and_certificate_consistent():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.7, 0.9, size=20000)
    b = bernoulli_from_scores(scores, seed=1)
    assert b.mean() == pytest.approx(scores.mean(), abs=0.01)
    out = certify(scores[:200], sigma=0.01, q=0.5, confidence=0.99, seed=2)
    assert out["p_a"] == pytest.approx(clopper_pearson_lower(out["successes"], 200, 0.99))
    assert out["p_a"] < out["smoothed_score"]
    assert out["radius"] == pytest.approx(certified_radius(out["p_a"], 0.5, 0.01))
    with pytest.raises(UserError):
        bernoulli_from_scores([1.5])
