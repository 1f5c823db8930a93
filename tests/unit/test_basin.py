"""Radius search: bracketing + bisection recovers planted analytic radii; grid reading agrees."""

from __future__ import annotations

import math

import pytest

from tunescope.errors import UserError
from tunescope.landscape.basin import (
    curve,
    direction_radius,
    find_radius,
    grid_radius,
    score_threshold,
    symmetric_grid,
)
from tunescope.landscape.directions import random_direction, select_scope
from tunescope.landscape.perturb import perturbed
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

pytestmark = pytest.mark.usefixtures("one_thread")


def test_planted_score_on_a_tiny_model_gives_the_analytic_radius():
    """S(theta) = 1 - ||theta - theta_0||^2 / K, read from the weights the model actually uses.

    Along delta with ||delta||^2 = D: S(theta_0 + a delta) = 1 - a^2 D / K, so the radius for tau is
    a* = sqrt(tau K / D) on both sides.
    """
    texts, _ = toy_sentiment(16, 0)
    model = tiny_classifier("bert", tiny_tokenizer(texts))
    scope = select_scope(model, "layers:0-1")
    theta0 = [p.detach().clone() for p in scope.params]
    delta = random_direction(scope, seed=1, index=0)
    D = sum(float(d.double().pow(2).sum()) for d in delta)
    K, tau = 50.0, 0.05
    # the modules' *current* weights (parametrized while perturbed)
    holders = [(m, n) for m in model.modules() for n, p in list(m._parameters.items())
               if any(p is q for q in scope.params)]

    def planted_score() -> float:
        total = 0.0
        for (m, n), w0 in zip(holders, theta0, strict=True):
            total += float((getattr(m, n).detach().double() - w0.double()).pow(2).sum())
        return 1.0 - total / K

    with perturbed(model, scope.params, delta) as pert:
        def score_at(a: float) -> float:
            pert.set_scale(a)
            return planted_score()

        s0 = score_at(0.0)
        assert s0 == pytest.approx(1.0)
        res = direction_radius(score_at, score_threshold(s0, tau), a_init=1e-3, rtol=1e-3)
    analytic = math.sqrt(tau * K / D)
    for side in (res.positive, res.negative):
        assert side.radius <= analytic * (1 + 1e-6)  # lo is verified inside
        assert side.radius == pytest.approx(analytic, rel=2e-3)
        assert side.evaluations == len(side.trace)
        assert all(abs(a) <= side.radius + 1e-12 or s < 1 - tau for a, s in side.trace)
    assert res.radius == pytest.approx(analytic, rel=2e-3)


@pytest.mark.parametrize("true_r,a_init", [(0.37, 0.01), (0.37, 5.0), (3e-4, 1.0), (12.0, 0.2)])
def test_step_score_radius_within_tolerance_and_few_evaluations(true_r, a_init):
    def score(a):
        return 0.9 if abs(a) <= true_r else 0.2

    res = find_radius(score, 0.85, a_init=a_init, rtol=0.05)
    assert res.radius <= true_r < res.hi
    assert res.hi - res.lo <= 0.05 * res.hi
    # bracketing costs log2(distance to the edge) + 1, bisection log2(1/rtol) ~ 5
    assert res.evaluations <= abs(math.log2(true_r / a_init)) + 2 + 6


def test_warm_start_costs_at_most_six_evaluations_per_sign():
    def score(a):
        return 1.0 - abs(a)

    res = direction_radius(score, 0.5, a_init=0.45, rtol=0.1)
    assert res.radius == pytest.approx(0.5, rel=0.1)
    assert res.positive.evaluations <= 6 and res.negative.evaluations <= 6


def test_relative_threshold_and_edges():
    assert score_threshold(0.8, 0.1, relative=True) == pytest.approx(0.72)
    assert score_threshold(0.8, 0.05) == pytest.approx(0.75)
    with pytest.raises(UserError):
        score_threshold(0.8, -1)
    inside_everywhere = find_radius(lambda a: 1.0, 0.5, a_init=1.0, a_max=8.0)
    assert inside_everywhere.hit_max and inside_everywhere.radius == 8.0
    outside_everywhere = find_radius(lambda a: 0.0, 0.5, a_init=1.0, a_min=1e-3)
    assert outside_everywhere.radius == 0.0


def test_grid_curve_and_grid_radius_agree_with_bisection():
    def score(a):
        return 1.0 - (a / 0.3) ** 2 if a > 0 else 1.0 - (a / 0.6) ** 2

    grid = symmetric_grid(1.0, 41)
    assert len(grid) == 41 and grid[20] == pytest.approx(0.0)
    s = curve(score, grid)
    step = grid[1] - grid[0]
    thr = 0.9
    r_pos = grid_radius(grid, s, thr, sign=1.0)
    r_neg = grid_radius(grid, s, thr, sign=-1.0)
    exact_pos, exact_neg = 0.3 * math.sqrt(0.1), 0.6 * math.sqrt(0.1)
    assert exact_pos - step <= r_pos <= exact_pos
    assert exact_neg - step <= r_neg <= exact_neg
    bis = direction_radius(score, thr, a_init=0.1, atol=step, rtol=0.0)
    assert abs(bis.positive.radius - r_pos) <= step and abs(bis.negative.radius - r_neg) <= step
