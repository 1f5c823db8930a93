"""Glue between a model and the pure pieces: score along a direction, search its radius, find the worst one.

Every function here leaves the model's weights bit-identical (all moves go through `perturb.perturbed`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tunescope.landscape.basin import DirectionRadius, curve, direction_radius
from tunescope.landscape.directions import Scope, random_direction, worst_direction
from tunescope.landscape.perturb import perturbed
from tunescope.landscape.scores import Scorer


def radius_along(model: nn.Module, scorer: Scorer, scope: Scope, direction: list[torch.Tensor], threshold: float,
                 *, a_init: float, rtol: float = 0.05, atol: float = 0.0, a_max: float = 1e4,
                 growth: float = 2.0) -> DirectionRadius:
    """Radius of the basin {a : S(theta + a delta) >= threshold} along +delta and -delta (bisection)."""
    with perturbed(model, scope.params, direction) as pert:
        def score_at(a: float) -> float:
            pert.set_scale(a)
            return scorer.score(model)

        return direction_radius(score_at, threshold, a_init=a_init, rtol=rtol, atol=atol, a_max=a_max,
                                growth=growth)


def curve_along(model: nn.Module, scorer: Scorer, scope: Scope, direction: list[torch.Tensor],
                grid: list[float]) -> list[float]:
    """S(theta + a delta) for every a in `grid` (the 1-D curve)."""
    with perturbed(model, scope.params, direction) as pert:
        def score_at(a: float) -> float:
            pert.set_scale(a)
            return scorer.score(model)

        return curve(score_at, grid)


def worst_case_direction(model: nn.Module, scorer: Scorer, scope: Scope, *, scale: float, seed: int, index: int = 0,
                         steps: int = 10, step_size: float = 0.5,
                         max_batches: int | None = 2) -> tuple[list[torch.Tensor], list[float]]:
    """Worst-case delta: projected gradient ascent of L(theta + scale * delta) on ||delta|| = sqrt(d).

    Starts from random direction (seed, index). The model's own parameters are frozen during the
    ascent (only delta needs a gradient); their requires_grad flags are restored afterwards.
    The loss uses the first `max_batches` evaluation batches.
    """
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()  # no dropout: ascend the same function the score measures
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        def loss_at(delta: list[torch.Tensor]) -> torch.Tensor:
            with perturbed(model, scope.params, delta, scale=scale):
                return scorer.loss(model, max_batches)

        init = random_direction(scope, seed, index)
        return worst_direction(scope, loss_at, scale=scale, init=init, steps=steps, step_size=step_size)
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(was_training)


def noisy_scores(model: nn.Module, scorer: Scorer, scope: Scope, *, sigma: float, draws: int,
                 seed: int) -> list[float]:
    """S(theta + eps_i), eps_i ~ N(0, sigma^2 I) over the scope, i = 1..draws (for the certified radius).

    eps_i = sigma * z_i with z_i the raw Gaussian direction (seed, 10**6 + i), so the draws never
    coincide with the random basin directions of the same seed.
    """
    out = []
    for i in range(draws):
        z = random_direction(scope, seed, 10**6 + i)
        with perturbed(model, scope.params, z, scale=sigma):
            out.append(scorer.score(model))
    return out


def sqrt_dim(scope: Scope) -> float:
    """sqrt(d): the norm of a typical N(0, I) direction, the unit that converts a to an L2 distance."""
    return math.sqrt(scope.dim)
