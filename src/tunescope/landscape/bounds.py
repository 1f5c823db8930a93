"""Statistical bounds for basins: Clopper-Pearson on fractions, the certified radius of a smoothed score.

- Clopper-Pearson (exact binomial) one-sided lower bound at confidence 1 - alpha on a proportion
  with k successes in n trials: the alpha quantile of Beta(k, n - k + 1) (0 when k = 0); the upper
  bound is the 1 - alpha quantile of Beta(k + 1, n - k) (1 when k = n).
- Most-case basin [paper]: the fraction of random directions still inside the basin at scale a is
  bounded below by Clopper-Pearson with k = #{directions whose radius >= a}, n = m directions.
- Certified radius [paper]: for a score S in [0, 1] and its Gaussian smoothing
  p(theta) = E_{eps ~ N(0, sigma^2 I)} S(theta + eps), Phi^-1(p(theta)) is (1/sigma)-Lipschitz in theta,
  so p(theta + delta) >= q for every ||delta||_2 <= R = sigma * (Phi^-1(p_A) - Phi^-1(q)), where p_A is a
  lower confidence bound on p(theta). R = 0 when p_A <= q.
  p_A: n noise draws give scores s_i in [0, 1]; we turn each into a Bernoulli b_i = 1[u_i < s_i] with
  u_i ~ U(0, 1) (equivalently: the correctness of one uniformly drawn example), so the b_i are i.i.d.
  Bernoulli(p(theta)) and the Clopper-Pearson lower bound on sum b_i is exact, not approximate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from tunescope.errors import UserError


def _alpha(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise UserError(f"bad value {confidence} for --confidence: expected a number in (0, 1)")
    return 1.0 - confidence


def clopper_pearson_lower(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower bound: Beta(k, n - k + 1).ppf(1 - confidence); 0 when k = 0."""
    alpha = _alpha(confidence)
    if not 0 <= k <= n or n <= 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper bound: Beta(k + 1, n - k).ppf(confidence); 1 when k = n."""
    alpha = _alpha(confidence)
    if not 0 <= k <= n or n <= 0:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    return 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))


def fraction_inside_bound(radii: Sequence[float], scale: float, confidence: float = 0.95) -> dict:
    """Clopper-Pearson lower bound on P(radius >= scale) over random directions.

    k = #{radii >= scale}, n = len(radii). Returns {scale, inside, n, fraction, cp_lower_bound}.
    """
    r = np.asarray(radii, dtype=float)
    if r.size == 0:
        raise UserError("no radii to bound: expected at least one direction (--num-directions >= 1)")
    k = int((r >= scale).sum())
    return {"scale": float(scale), "inside": k, "n": int(r.size), "fraction": k / r.size,
            "cp_lower_bound": clopper_pearson_lower(k, int(r.size), confidence)}


def bernoulli_from_scores(scores: Sequence[float], seed: int = 0) -> np.ndarray:
    """b_i = 1[u_i < s_i], u_i ~ U(0, 1) seeded: i.i.d. Bernoulli(E s) when the s_i are i.i.d. in [0, 1]."""
    s = np.asarray(scores, dtype=float)
    if s.size and (s.min() < 0 or s.max() > 1):
        raise UserError("the certified radius needs a score in [0, 1] (an accuracy), got values outside it")
    return (np.random.default_rng(seed).random(s.size) < s).astype(int)


def certified_radius(p_a: float, q: float, sigma: float) -> float:
    """R = sigma * (Phi^-1(p_A) - Phi^-1(q)), or 0 when p_A <= q (no certificate)."""
    if sigma <= 0 or not 0 < q < 1:
        raise UserError(f"bad certificate settings sigma={sigma}, q={q}: expected sigma > 0 and 0 < q < 1")
    if p_a <= q:
        return 0.0
    return float(sigma * (stats.norm.ppf(min(p_a, 1 - 1e-12)) - stats.norm.ppf(q)))


def certify(scores: Sequence[float], *, sigma: float, q: float, confidence: float = 0.95, seed: int = 0) -> dict:
    """Certified radius from n noisy-model scores s_i = S(theta + eps_i), eps_i ~ N(0, sigma^2 I).

    p_A = Clopper-Pearson lower bound on the smoothed score from the Bernoulli-rounded draws;
    R = sigma * (Phi^-1(p_A) - Phi^-1(q)). Returns the numbers behind it too.
    """
    b = bernoulli_from_scores(scores, seed)
    n, k = int(b.size), int(b.sum())
    p_a = clopper_pearson_lower(k, n, confidence)
    return {"sigma": sigma, "q": q, "n_draws": n, "successes": k, "smoothed_score": float(np.mean(scores)),
            "p_a": p_a, "confidence": confidence, "radius": certified_radius(p_a, q, sigma)}
