"""`tunescope landscape`: basin radii of a model along random, worst-case and fine-tuning directions.

Flow: load the model (named asset, folder, hub id, or a tunescope run directory -> its final checkpoint)
and a fixed evaluation set -> S(theta) -> for each direction type, directions over the chosen scope and
their radii (bracketing + bisection, both signs) -> radius quantiles, Clopper-Pearson bound on the fraction
of random directions inside at a scale, 1-D curves, optional certified radius -> results.json `basin` +
report. The weights are never modified (see landscape/perturb.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunescope.config import check, load_yaml, save_config
from tunescope.errors import UserError
from tunescope.io import atomic_write_json

log = logging.getLogger(__name__)
DIRECTION_TYPES = ("random", "worst", "sft")


@dataclass
class LandscapeConfig:
    """What `tunescope landscape` measures."""

    model: str = "minilm-l6"
    """Model: a named asset, a local folder, a tunescope run directory (its checkpoints/final), or a hub id."""
    base: str | None = None
    """Base checkpoint theta_0 of the `sft` direction (default for a run directory: the model it started from)."""
    data: str | None = None
    """Evaluation data (default: the run's data, rotten_tomatoes for classifiers, news_text for language models)."""
    text_column: str | None = None
    """Text column of a local or hub data set."""
    label_column: str | None = None
    """Label column of a local or hub data set."""
    directions: list[str] = field(default_factory=lambda: ["random"])
    """Direction types, comma-separated: random (most-case), worst (projected gradient ascent), sft."""
    num_directions: int = 8
    """Random directions m."""
    num_worst: int = 1
    """Worst-case directions (each from its own random start)."""
    scope: str = "all"
    """Parameters moved: all | body | layers:A-B | adapters | trainable | sparse (a SIFT run's trained entries)."""
    normalization: str = "none"
    """Random directions: none (raw N(0, I), the paper's choice) or tensor (each tensor rescaled to its weight norm)."""
    tau: float = 0.05
    """Basin floor: S(theta + a delta) >= S(theta) - tau (absolute), or S(theta) * (1 - tau) with relative=true."""
    relative: bool = False
    """Read tau as a relative drop."""
    rtol: float = 0.05
    """Bisection stops when hi - lo <= rtol * hi."""
    a_init: float | None = None
    """First scale tried (default 1e-3 raw, 0.05 tensor-normalised); later directions start at the running median."""
    worst_scale: float | None = None
    """Scale a of the worst-case ascent (default: the median random radius, else a_init)."""
    worst_steps: int = 10
    """Projected gradient-ascent steps."""
    worst_step_size: float = 0.5
    """Ascent step, as a fraction of the sphere radius sqrt(d)."""
    worst_batches: int = 2
    """Evaluation batches the ascent's loss uses."""
    eval_examples: int = 256
    """Examples (classification) or held-out blocks (language model) in the evaluation set."""
    eval_batch_size: int = 64
    """Batch size of the score evaluations."""
    max_length: int = 64
    """Maximum tokens per example (block length for language models)."""
    limit: int | None = None
    """Cap on examples per split when loading the data."""
    at_scale: float | None = None
    """Scale a of the Clopper-Pearson bound on the fraction inside (default: half the median random radius)."""
    confidence: float = 0.95
    """Confidence of the Clopper-Pearson bounds."""
    certify_sigma: float = 0.0
    """Certified radius: noise sigma of the smoothed score (0: skip)."""
    certify_draws: int = 32
    """Certified radius: noise draws."""
    certify_q: float | None = None
    """Certified radius: the smoothed score must stay >= q (default: chance 1/C for classifiers, S/2 for LMs)."""
    curve_points: int = 21
    """Points of each 1-D curve (0: no curves)."""
    curve_directions: int = 1
    """Directions per type drawn as 1-D curves."""
    seed: int = 0
    """Seed of the data split and of the directions."""

    def __post_init__(self):
        for d in self.directions:
            check(d in DIRECTION_TYPES, "directions", d, "a comma-separated subset of " + ",".join(DIRECTION_TYPES))
        check(len(self.directions) > 0, "directions", self.directions, "at least one of random, worst, sft")
        check(self.num_directions >= 1, "num_directions", self.num_directions, "a positive integer")
        check(self.num_worst >= 1, "num_worst", self.num_worst, "a positive integer")
        check(self.normalization in ("none", "tensor"), "normalization", self.normalization, "none or tensor")
        check(self.tau >= 0 and (not self.relative or self.tau < 1), "tau", self.tau,
              "a number >= 0 (< 1 when relative)")
        check(0 < self.rtol < 1, "rtol", self.rtol, "a number in (0, 1)")
        check(self.a_init is None or self.a_init > 0, "a_init", self.a_init, "a positive number")
        check(self.worst_scale is None or self.worst_scale > 0, "worst_scale", self.worst_scale, "a positive number")
        check(self.worst_steps >= 1, "worst_steps", self.worst_steps, "a positive integer")
        check(self.eval_examples >= 1, "eval_examples", self.eval_examples, "a positive integer")
        check(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "a positive integer")
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        check(0 < self.confidence < 1, "confidence", self.confidence, "a number in (0, 1)")
        check(self.certify_sigma >= 0, "certify_sigma", self.certify_sigma, "a number >= 0")
        check(self.certify_draws >= 1, "certify_draws", self.certify_draws, "a positive integer")
        check(self.certify_q is None or 0 < self.certify_q < 1, "certify_q", self.certify_q, "a number in (0, 1)")
        check(self.curve_points == 0 or self.curve_points >= 3, "curve_points", self.curve_points, "0 or >= 3")
        if "sft" in self.directions and self.base is None and not _is_run_dir(self.model):
            raise UserError("the sft direction needs --base CHECKPOINT (the model before fine-tuning), "
                            "unless --model is a tunescope run directory")


def _is_run_dir(path: str) -> bool:
    p = Path(path)
    return (p / "config.yaml").is_file() and (p / "checkpoints" / "final").is_dir()


def run_info(path: str) -> dict:
    """The run directory's config.yaml (data, model, seed, strategy ...) or {} for anything else."""
    return load_yaml(Path(path) / "config.yaml") if _is_run_dir(path) else {}


def run_landscape(config: LandscapeConfig, run_dir: str | Path, *, write_report: bool = True) -> dict:
    """Measure the basin of `config.model`; writes RUN_DIR/config.yaml, results.json (`basin`), report.html."""
    from transformers import set_seed

    from tunescope.experiments.landscape_setup import load_subject

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    start = time.perf_counter()
    set_seed(config.seed)
    subject = load_subject(config)
    basin = measure_basin(subject.model, subject.scorer, subject.scope, config, base_params=subject.base_params,
                          chance=subject.chance)
    results = {"command": "landscape", "model": config.model, "data": subject.data_name, "seed": config.seed,
               "score_kind": subject.scorer.kind, "basin": basin,
               "wall_seconds": round(time.perf_counter() - start, 2)}
    if subject.run:
        results["run"] = {k: subject.run.get(k) for k in ("model", "strategy", "noise_sigma") if k in subject.run}
    atomic_write_json(run_dir / "results.json", results)
    if write_report:
        from tunescope.report.html import build_report

        build_report(run_dir)
    return results


def _quantiles(radii: list[float]) -> dict[str, float]:
    r = np.asarray(radii, dtype=float)
    return {f"q{int(q * 100):02d}": float(np.quantile(r, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)}


def measure_basin(model, scorer, scope, config: LandscapeConfig, *, base_params: dict | None = None,
                  chance: float | None = None) -> dict:
    """The `basin` results block for one model (see docs/landscape.md for every key)."""
    from tunescope.landscape.basin import score_threshold, symmetric_grid
    from tunescope.landscape.bounds import certify, fraction_inside_bound
    from tunescope.landscape.directions import global_norm, random_direction, sft_direction, weight_distance
    from tunescope.landscape.measure import (curve_along, noisy_scores, radius_along, sqrt_dim,
                                             worst_case_direction)

    model.eval()
    s0 = scorer.score(model)
    threshold = score_threshold(s0, config.tau, config.relative)
    a_init = config.a_init or (1e-3 if config.normalization == "none" else 0.05)
    out: dict = {"score": s0, "threshold": threshold, "tau": config.tau, "relative": config.relative,
                 "scope": config.scope, "dim": scope.dim, "sqrt_dim": sqrt_dim(scope),
                 "normalization": config.normalization, "rtol": config.rtol, "direction_types": []}
    kept: dict[str, list] = {}  # directions kept for the curves

    def measure(kind: str, make, count: int, start: float) -> None:
        t0 = time.perf_counter()
        radii, pos, neg, evals, norms, extra, censored = [], [], [], 0, [], {}, 0
        guess = start
        for i in range(count):
            direction, info = make(i)
            # warm start (growth 1.25) once a previous direction gave a finite radius
            r = radius_along(model, scorer, scope, direction, threshold, a_init=guess, rtol=config.rtol,
                             growth=1.25 if guess != start else 2.0)
            radii.append(r.radius)
            pos.append(r.positive.radius)
            neg.append(r.negative.radius)
            evals += r.evaluations
            censored += int(r.positive.hit_max or r.negative.hit_max)
            norms.append(global_norm(direction))
            guess = float(np.median(radii)) if np.median(radii) > 0 else start
            if i < config.curve_directions:
                kept.setdefault(kind, []).append(direction)
            for k, v in info.items():
                extra.setdefault(k, []).append(v)
            log.info("%s direction %d/%d: radius %.4g (+%.4g / -%.4g), %d evaluations", kind, i + 1, count,
                     r.radius, r.positive.radius, r.negative.radius, r.evaluations)
        out[kind] = {"radii": radii, "radii_positive": pos, "radii_negative": neg,
                     "median_radius": float(np.median(radii)), "quantiles": _quantiles(radii),
                     "median_l2_radius": float(np.median([r * n for r, n in zip(radii, norms, strict=True)])),
                     "direction_norm": float(np.mean(norms)), "evaluations": evals,
                     "evaluations_per_direction": evals / count, "censored": censored,
                     "seconds": round(time.perf_counter() - t0, 2),
                     **extra}
        out["direction_types"].append(kind)

    for kind in config.directions:
        if kind == "random":
            measure("random", lambda i: (random_direction(scope, config.seed, i, config.normalization), {}),
                    config.num_directions, a_init)
        elif kind == "worst":
            scale = config.worst_scale or (out["random"]["median_radius"] if "random" in out else a_init)

            def make_worst(i: int, scale=scale):
                d, trace = worst_case_direction(model, scorer, scope, scale=scale, seed=config.seed,
                                                index=50_000 + i, steps=config.worst_steps,
                                                step_size=config.worst_step_size, max_batches=config.worst_batches)
                return d, {"ascent_loss": trace}

            measure("worst", make_worst, config.num_worst, scale / 2)
            out["worst"]["ascent_scale"] = scale
        else:
            if base_params is None:
                raise UserError("the sft direction needs --base CHECKPOINT (the model before fine-tuning)")
            direction = sft_direction(scope, base_params)
            start = out["random"]["median_radius"] if "random" in out else a_init
            measure("sft", lambda i: (direction, {}), 1, start or a_init)
            # theta_0 itself sits at a = -||theta - theta_0|| / ||delta|| on this line
            out["sft"]["base_scale"] = -weight_distance(scope, base_params) / global_norm(direction)

    first = out[out["direction_types"][0]]
    ref = out.get("random", first)
    scale = config.at_scale or 0.5 * ref["median_radius"]
    out["cp_scale"] = scale
    out["confidence"] = config.confidence
    for kind in out["direction_types"]:
        b = fraction_inside_bound(out[kind]["radii"], scale, config.confidence)
        out[kind]["cp_lower_bound"], out[kind]["fraction_inside"] = b["cp_lower_bound"], b["fraction"]
    if "random" in out and len(out["random"]["radii"]) > 1:
        grid = list(np.linspace(0, 2 * max(out["random"]["radii"]) + 1e-12, 25))
        out["random"]["cp_curve"] = [{"scale": float(a), **{k: v for k, v in fraction_inside_bound(
            out["random"]["radii"], float(a), config.confidence).items() if k != "scale"}} for a in grid]

    if config.curve_points:
        out["curves"] = {}
        for kind, dirs in kept.items():
            a_max = 2.0 * max(out[kind]["median_radius"], 1e-6)
            grid = symmetric_grid(a_max, config.curve_points)
            out["curves"][kind] = {"grid": grid, "scores": [curve_along(model, scorer, scope, d, grid) for d in dirs]}

    if config.certify_sigma > 0:
        q = config.certify_q or (chance if chance is not None else s0 / 2)
        scores = noisy_scores(model, scorer, scope, sigma=config.certify_sigma, draws=config.certify_draws,
                              seed=config.seed)
        cert = certify(scores, sigma=config.certify_sigma, q=q, confidence=config.confidence, seed=config.seed)
        cert["radius_per_sqrt_d"] = cert["radius"] / sqrt_dim(scope)
        out["certificate"] = cert
        out["certified_radius"] = cert["radius"]
    return out


def summary_line(results: dict) -> str:
    """One printed line per direction type: median radius, quantiles, evaluations."""
    basin = results["basin"]
    lines = [f"score S(theta) = {basin['score']:.4f}, floor {basin['threshold']:.4f}, d = {basin['dim']:,}"]
    for kind in basin["direction_types"]:
        b = basin[kind]
        lines.append(f"{kind:>6}: median radius {b['median_radius']:.4g} (L2 {b['median_l2_radius']:.4g}), "
                     f"q10-q90 {b['quantiles']['q10']:.4g}-{b['quantiles']['q90']:.4g}, "
                     f"{b['evaluations_per_direction']:.1f} evals/direction, "
                     f"CP fraction inside at a={basin['cp_scale']:.3g} >= {b['cp_lower_bound']:.3f}")
    if "certificate" in basin:
        c = basin["certificate"]
        lines.append(f"certified radius {c['radius']:.4g} (L2; {c['radius_per_sqrt_d']:.4g} per sqrt(d)), "
                     f"p_A {c['p_a']:.3f} vs q {c['q']:.3f}, sigma {c['sigma']:g}, {c['n_draws']} draws")
    return "\n".join(lines)


# --- hook of the fine-tuning recipe: GO training (FinetuneConfig.noise_sigma) ------------------------------------

def _go_training(run) -> None:
    """before_train: with noise_sigma > 0, train with GO (loss at theta + eps, gradient applied to theta)."""
    sigma = float(getattr(run.config, "noise_sigma", 0.0) or 0.0)
    if sigma < 0:
        raise UserError(f"bad value {sigma} for noise_sigma: expected a number >= 0 (0 disables GO training)")
    if sigma == 0:
        return
    from tunescope.training.noise import GONoiseCallback

    callback = GONoiseCallback(run.model, sigma, seed=int(run.config.seed))
    run.extras.setdefault("trainer_callbacks", []).append(callback)
    run.results["go"] = {"noise_sigma": sigma, "noisy_params": sum(p.numel() for p in callback.noise.params)}


def _go_record(run) -> None:
    """after_train: how many noise draws GO made (one per optimizer step)."""
    for cb in run.extras.get("trainer_callbacks", []):
        if hasattr(cb, "noise") and "go" in run.results:
            run.results["go"]["draws"] = cb.noise.draws


def _register_hooks() -> None:
    from tunescope.experiments.hooks import register_hook

    register_hook("before_train", _go_training)
    register_hook("after_train", _go_record)


_register_hooks()
