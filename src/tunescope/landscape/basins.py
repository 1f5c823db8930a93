"""The whole basin measurement of one model: every direction type, bounds, 1-D curves, certified radius.

(landscape/basin.py searches the radius along ONE direction; this module runs that search over the
direction types of `BasinOptions` and assembles the `basin` results block, see docs/landscape.md.)

Per direction type with m directions delta_i: radius r_i = min(r_i^+, r_i^-) (bracketing + bisection on
both signs, floor S(theta) - tau), median and q10..q90 of the r_i, L2 radius r_i * ||delta_i||, and the
Clopper-Pearson lower bound on the fraction of directions with r_i >= a at a = `at_scale` (default half the
median random radius). The first direction starts at a_init (growth 2, plain doubling); every later one at
the running median of the radii so far (growth 1.25), which brackets concentrated radii in ~2 evaluations.
Optional: S(theta + a delta) on a symmetric grid of 2 x the median radius (curves), and the certified L2
radius sigma (Phi^-1(p_A) - Phi^-1(q)) of the Gaussian-smoothed score.
The model's weights are never modified (every move goes through `perturb.perturbed`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tunescope.errors import UserError
from tunescope.landscape.basin import score_threshold, symmetric_grid
from tunescope.landscape.bounds import certify, fraction_inside_bound
from tunescope.landscape.directions import (
    Scope,
    global_norm,
    random_direction,
    sft_direction,
    weight_distance,
)
from tunescope.landscape.measure import (
    curve_along,
    noisy_scores,
    radius_along,
    sqrt_dim,
    worst_case_direction,
)
from tunescope.landscape.options import BasinOptions
from tunescope.landscape.scores import Scorer

log = logging.getLogger(__name__)

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
# index offset of the worst-case ascents' random starts, so they never reuse a random direction of the same seed
WORST_START_INDEX = 50_000
# one draw of directions: (delta, per-direction extras such as the ascent trace)
DirectionMaker = Callable[[int], tuple[list[torch.Tensor], dict]]


def radius_quantiles(radii: Sequence[float]) -> dict[str, float]:
    """{"q10", "q25", "q50", "q75", "q90"}: numpy's linearly interpolated quantiles of the radii."""
    r = np.asarray(radii, dtype=float)
    return {f"q{int(q * 100):02d}": float(np.quantile(r, q)) for q in QUANTILES}


@dataclass
class _Survey:
    """What every direction type of one measurement shares, and the directions kept for the curves."""

    model: nn.Module
    scorer: Scorer
    scope: Scope
    options: BasinOptions
    threshold: float
    kept: dict[str, list[list[torch.Tensor]]] = field(default_factory=dict)

    def radii(self, kind: str, make: DirectionMaker, count: int, start: float) -> dict:
        """Radii of `count` directions from `make(i)`, the first searched from `start`; the per-type block."""
        t0 = time.perf_counter()
        radii, pos, neg, evals, norms, extra, censored = [], [], [], 0, [], {}, 0
        guess = start
        for i in range(count):
            direction, info = make(i)
            # warm start (growth 1.25) once a previous direction gave a finite radius
            r = radius_along(self.model, self.scorer, self.scope, direction, self.threshold, a_init=guess,
                             rtol=self.options.rtol, growth=1.25 if guess != start else 2.0)
            radii.append(r.radius)
            pos.append(r.positive.radius)
            neg.append(r.negative.radius)
            evals += r.evaluations
            censored += int(r.positive.hit_max or r.negative.hit_max)
            norms.append(global_norm(direction))
            guess = float(np.median(radii)) if np.median(radii) > 0 else start
            if i < self.options.curve_directions:
                self.kept.setdefault(kind, []).append(direction)
            for k, v in info.items():
                extra.setdefault(k, []).append(v)
            log.info("%s direction %d/%d: radius %.4g (+%.4g / -%.4g), %d evaluations", kind, i + 1, count,
                     r.radius, r.positive.radius, r.negative.radius, r.evaluations)
        return {"radii": radii, "radii_positive": pos, "radii_negative": neg,
                "median_radius": float(np.median(radii)), "quantiles": radius_quantiles(radii),
                "median_l2_radius": float(np.median([r * n for r, n in zip(radii, norms, strict=True)])),
                "direction_norm": float(np.mean(norms)), "evaluations": evals,
                "evaluations_per_direction": evals / count, "censored": censored,
                "seconds": round(time.perf_counter() - t0, 2),
                **extra}


def _worst_maker(survey: _Survey, scale: float) -> DirectionMaker:
    """Direction i = projected gradient ascent of the loss at `scale`, from random start 50_000 + i."""
    o = survey.options

    def make(i: int):
        d, trace = worst_case_direction(survey.model, survey.scorer, survey.scope, scale=scale, seed=o.seed,
                                        index=WORST_START_INDEX + i, steps=o.worst_steps,
                                        step_size=o.worst_step_size, max_batches=o.worst_batches)
        return d, {"ascent_loss": trace}

    return make


def _add_fraction_bounds(out: dict, options: BasinOptions) -> None:
    """Clopper-Pearson lower bound on the fraction inside at cp_scale for every type; the random type's curve."""
    first = out[out["direction_types"][0]]
    ref = out.get("random", first)
    scale = options.at_scale or 0.5 * ref["median_radius"]
    out["cp_scale"] = scale
    out["confidence"] = options.confidence
    for kind in out["direction_types"]:
        b = fraction_inside_bound(out[kind]["radii"], scale, options.confidence)
        out[kind]["cp_lower_bound"], out[kind]["fraction_inside"] = b["cp_lower_bound"], b["fraction"]
    if "random" in out and len(out["random"]["radii"]) > 1:
        grid = list(np.linspace(0, 2 * max(out["random"]["radii"]) + 1e-12, 25))
        out["random"]["cp_curve"] = [{"scale": float(a), **{k: v for k, v in fraction_inside_bound(
            out["random"]["radii"], float(a), options.confidence).items() if k != "scale"}} for a in grid]


def _curves(survey: _Survey, out: dict) -> dict:
    """Per type: the symmetric grid on [-2 median, 2 median] and S along each kept direction."""
    curves = {}
    for kind, dirs in survey.kept.items():
        a_max = 2.0 * max(out[kind]["median_radius"], 1e-6)
        grid = symmetric_grid(a_max, survey.options.curve_points)
        curves[kind] = {"grid": grid,
                        "scores": [curve_along(survey.model, survey.scorer, survey.scope, d, grid) for d in dirs]}
    return curves


def _certificate(survey: _Survey, s0: float, chance: float | None) -> dict:
    """Certified L2 radius of the smoothed score, q = certify_q, else chance, else S(theta) / 2."""
    o = survey.options
    q = o.certify_q or (chance if chance is not None else s0 / 2)
    scores = noisy_scores(survey.model, survey.scorer, survey.scope, sigma=o.certify_sigma, draws=o.certify_draws,
                          seed=o.seed)
    cert = certify(scores, sigma=o.certify_sigma, q=q, confidence=o.confidence, seed=o.seed)
    cert["radius_per_sqrt_d"] = cert["radius"] / sqrt_dim(survey.scope)
    return cert


def measure_basin(model: nn.Module, scorer: Scorer, scope: Scope, options: BasinOptions, *,
                  base_params: dict[str, torch.Tensor] | None = None, chance: float | None = None) -> dict:
    """The `basin` results block for one model (see docs/landscape.md for every key).

    `base_params` (name -> theta_0 tensor) is needed by the sft direction delta = theta - theta_0;
    `chance` (1 / C for a classifier) is the default q of the certified radius.
    """
    model.eval()
    s0 = scorer.score(model)
    threshold = score_threshold(s0, options.tau, options.relative)
    a_init = options.a_init or (1e-3 if options.normalization == "none" else 0.05)
    out: dict = {"score": s0, "threshold": threshold, "tau": options.tau, "relative": options.relative,
                 "scope": options.scope, "dim": scope.dim, "sqrt_dim": sqrt_dim(scope),
                 "normalization": options.normalization, "rtol": options.rtol, "direction_types": []}
    survey = _Survey(model, scorer, scope, options, threshold)

    for kind in options.directions:
        if kind == "random":
            out["random"] = survey.radii(
                "random", lambda i: (random_direction(scope, options.seed, i, options.normalization), {}),
                options.num_directions, a_init)
        elif kind == "worst":
            scale = options.worst_scale or (out["random"]["median_radius"] if "random" in out else a_init)
            out["worst"] = survey.radii("worst", _worst_maker(survey, scale), options.num_worst, scale / 2)
            out["worst"]["ascent_scale"] = scale
        else:
            if base_params is None:
                raise UserError("the sft direction needs --base CHECKPOINT (the model before fine-tuning)")
            direction = sft_direction(scope, base_params)
            start = out["random"]["median_radius"] if "random" in out else a_init
            out["sft"] = survey.radii("sft", lambda i, d=direction: (d, {}), 1, start or a_init)
            # theta_0 itself sits at a = -||theta - theta_0|| / ||delta|| on this line
            out["sft"]["base_scale"] = -weight_distance(scope, base_params) / global_norm(direction)
        out["direction_types"].append(kind)

    _add_fraction_bounds(out, options)
    if options.curve_points:
        out["curves"] = _curves(survey, out)
    if options.certify_sigma > 0:
        out["certificate"] = _certificate(survey, s0, chance)
        out["certified_radius"] = out["certificate"]["radius"]
    return out
