"""`tunescope bench landscape`: basin radius by bracketing + bisection vs a 41-point grid, side by side.

For each of `directions` random directions (both signs): bisection (warm-started from the median of the
previous directions' radii, relative tolerance `rtol`, default 4 / (grid_points - 1) = 0.1, the grid's own
resolution relative to the radius) and a `grid_points`-point grid on [-A, A] with
A = 2 * max(bisection radii of that direction), so the grid has the edge well inside its range (an
advantage the grid would not have in practice). The grid radius is the last grid point inside before
the first one outside; the two radii agree when |r_bisect - r_grid| <= grid step. Measurements of the
two methods alternate direction by direction, so machine load hits both alike.
Reported: evals_per_direction (bisection, both signs), grid_evals_per_direction, time_ratio_vs_grid
(grid seconds / bisection seconds), agreement (fraction of signs within one grid step), max_diff_in_steps.

Default model: a tiny BERT trained in-process on the toy task (seconds). `model=minilm-l6` fine-tunes
nothing: point it at a fine-tuned run directory (`model=runs/finetune-full-...`) for a real measurement.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from tunescope.bench import BENCHMARKS
from tunescope.errors import UserError


def _tiny_subject(seed: int):
    from tunescope.landscape.directions import select_scope
    from tunescope.landscape.scores import Scorer
    from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

    texts, labels = toy_sentiment(320, seed)
    tok = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = tiny_classifier("bert", tok, seed=seed)
    enc = tok(texts, padding=True, return_tensors="pt")
    y = torch.tensor(labels)
    batches = [{"input_ids": enc["input_ids"][i:i + 64], "attention_mask": enc["attention_mask"][i:i + 64],
                "labels": y[i:i + 64]} for i in range(0, 320, 64)]
    train, test = batches[:3], batches[3:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(60):
        model(**train[step % len(train)]).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, Scorer("classification", test), select_scope(model, "all"), "tiny-bert (toy task)"


def _real_subject(options: dict):
    from tunescope.experiments.landscape import LandscapeConfig
    from tunescope.experiments.landscape_setup import load_subject

    cfg = LandscapeConfig(model=options["model"], eval_examples=int(options.get("eval_examples", 128)),
                          max_length=int(options.get("max_length", 48)),
                          limit=int(options["limit"]) if "limit" in options else 600)
    s = load_subject(cfg)
    return s.model, s.scorer, s.scope, options["model"]


@BENCHMARKS.register("landscape")
def bench_landscape(options: dict) -> dict:
    """Evaluations and wall time per direction: bisection vs a 41-point grid finding the same radius."""
    from tunescope.landscape.basin import (
        direction_radius,
        grid_radius,
        score_threshold,
        symmetric_grid,
    )
    from tunescope.landscape.directions import random_direction
    from tunescope.landscape.perturb import perturbed

    known = {"model", "directions", "grid_points", "rtol", "tau", "a_init", "seed", "eval_examples", "max_length",
             "limit", "threads"}
    unknown = set(options) - known
    if unknown:
        raise UserError(f"bad option(s) {', '.join(sorted(unknown))} for bench landscape: "
                        f"expected {', '.join(sorted(known))}")
    m = int(options.get("directions", 8))
    points = int(options.get("grid_points", 41))
    # the grid step is 2A / (points - 1) = 4 r / (points - 1) = 0.1 r for 41 points: match that resolution
    rtol = float(options.get("rtol", 4.0 / (points - 1)))
    tau = float(options.get("tau", 0.05))
    seed = int(options.get("seed", 0))
    if m < 1 or points < 3:
        raise UserError(f"bad value directions={m} / grid_points={points}: expected >= 1 and >= 3")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(options.get("threads", 1)))
    try:
        model, scorer, scope, name = (_real_subject(options) if options.get("model") else _tiny_subject(seed))
        s0 = scorer.score(model)
        thr = score_threshold(s0, tau)
        guess = float(options.get("a_init", 1e-3))
        bis_evals, bis_time, grid_time, diffs_in_steps, radii = [], 0.0, 0.0, [], []
        for i in range(m):
            direction = random_direction(scope, seed, i)
            with perturbed(model, scope.params, direction) as pert:
                def score_at(a: float) -> float:
                    pert.set_scale(a)
                    return scorer.score(model)

                t0 = time.perf_counter()
                res = direction_radius(score_at, thr, a_init=guess, rtol=rtol, growth=1.25 if i else 2.0)
                pos, neg = res.positive, res.negative
                bis_time += time.perf_counter() - t0
                bis_evals.append(pos.evaluations + neg.evaluations)
                a_max = 2 * max(pos.radius, neg.radius, 1e-9)
                grid = symmetric_grid(a_max, points)
                t0 = time.perf_counter()
                scores = [score_at(a) for a in grid]
                grid_time += time.perf_counter() - t0
            step = grid[1] - grid[0]
            for res, sign in ((pos, 1.0), (neg, -1.0)):
                diffs_in_steps.append(abs(res.radius - grid_radius(grid, scores, thr, sign)) / step)
            radii.append(min(pos.radius, neg.radius))
            guess = float(np.median(radii)) or guess
    finally:
        torch.set_num_threads(threads)
    d = np.asarray(diffs_in_steps)
    return {"model": name, "score": s0, "directions": m, "rtol": rtol, "grid_points": points,
            "median_radius": float(np.median(radii)),
            "evals_per_direction": float(np.mean(bis_evals)), "max_evals_per_direction": int(max(bis_evals)),
            "grid_evals_per_direction": points,
            "seconds_per_direction_bisect": bis_time / m, "seconds_per_direction_grid": grid_time / m,
            "time_ratio_vs_grid": grid_time / bis_time, "agreement": float((d <= 1.0 + 1e-6).mean()),
            "max_diff_in_steps": float(d.max())}
