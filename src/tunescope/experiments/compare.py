"""`tunescope compare`: several strategies on the same data, model and seeds; one table and one report.

Each (strategy, seed) is an ordinary fine-tuning run in OUT/<strategy>-seed<s>/ (its own results.json and
report). An interrupted comparison continues with `--resume`: a finished run made with the same config is reused,
an interrupted one resumed from its last complete checkpoint (experiments.recipe.run_sub_run). The
comparison's own results.json holds every run's headline numbers (`comparison.runs`) and their mean and
standard deviation per strategy (`comparison.summary`).
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from pathlib import Path

import numpy as np

from tunescope.errors import TrainingDivergedError, UserError

log = logging.getLogger(__name__)

# (column, path into a run's results.json); the table and the plots use these names.
METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accuracy", ("eval", "accuracy")),
    ("baseline_accuracy", ("baseline", "accuracy")),
    ("nll", ("eval", "nll")),
    ("ece", ("eval", "ece")),
    ("ece_after_ts", ("eval", "ece_after_ts")),
    ("mce", ("eval", "mce")),
    ("brier", ("eval", "brier")),
    ("temperature", ("eval", "temperature")),
    ("head_norm_init", ("head_norm", "init")),
    ("head_norm_after_lp", ("head_norm", "after_lp")),
    ("head_norm_after_ft", ("head_norm", "after_ft")),
    ("feature_cosine", ("feature_change", "cosine")),
    ("feature_l2", ("feature_change", "l2")),
    ("ft_ratio", ("ntk", "ft_ratio")),
    ("trainable_params", ("trainable_params",)),
    ("wall_seconds", ("wall_seconds",)),
)


def _get(results: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results if isinstance(results, (int, float)) and not isinstance(results, bool) else None


def run_row(results: dict) -> dict:
    """The headline numbers of one run (None where the run did not compute a metric), and the kinds of its
    warnings (e.g. ["collapse"]; [] for a clean run)."""
    return {"strategy": results.get("strategy"), "seed": results.get("seed"),
            **{name: _get(results, path) for name, path in METRICS},
            "warnings": [w.get("kind") for w in results.get("warnings") or [] if isinstance(w, dict)]}


def run_warnings(results: dict, run_name: str) -> list[dict]:
    """A sub-run's warnings for the comparison's own results.json, each tagged with `run` and its message
    prefixed by the run's folder name, so the comparison's report and terminal say which run is affected."""
    return [{**w, "run": run_name, "message": f"{run_name}: {w.get('message', w.get('kind'))}"}
            for w in results.get("warnings") or [] if isinstance(w, dict)]


def summarise(rows: list[dict], strategies: list[str]) -> list[dict]:
    """Per strategy: mean and sample standard deviation (ddof=1; 0 for one seed) of every metric over seeds, and
    how many of its runs carry warnings (a collapsed run drags its strategy's mean down: look before comparing)."""
    out = []
    for strategy in strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        entry: dict = {"strategy": strategy, "n_seeds": len(mine),
                       "runs_with_warnings": sum(1 for r in mine if r.get("warnings"))}
        for name, _ in METRICS:
            vals = np.array([r[name] for r in mine if r[name] is not None], dtype=float)
            entry[name] = float(vals.mean()) if len(vals) else None
            entry[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else (0.0 if len(vals) else None)
        out.append(entry)
    return out


def run_compare(base, strategies: list[str], seeds: list[int], out_dir: str | Path, *,
                write_report: bool = True, resume: bool = False, overwrite: bool = False) -> dict:
    """Fine-tune `base` (a FinetuneConfig) once per (strategy, seed); returns the comparison results dict.

    `resume`: continue the comparison in `out_dir` (finished runs reused, an interrupted one resumed);
    `overwrite`: clear a non-empty `out_dir` first.
    """
    from tunescope.experiments.finetune import finetune
    from tunescope.experiments.recipe import run_recipe, run_sub_run
    from tunescope.experiments.rundir import RunDir
    from tunescope.strategies import STRATEGIES

    if not strategies:
        raise UserError("bad value '' for --strategies: expected a comma-separated list of strategies")
    for s in strategies:
        STRATEGIES.get(s)
    if len(set(strategies)) != len(strategies):
        raise UserError(f"bad value {','.join(strategies)!r} for --strategies: a strategy is listed twice")
    if not seeds:
        raise UserError("bad value '' for --seeds: expected a comma-separated list of integers")
    def body(rd: RunDir) -> dict:
        rows, warnings = [], []
        for seed in seeds:
            for strategy in strategies:
                sub = rd.sub(f"{strategy}-seed{seed}")
                config = dataclasses.replace(base, strategy=strategy, seed=seed)
                # A finished sub-run is reused, an interrupted one resumed, only when made with this very config.
                log.info("compare: %s, seed %d", strategy, seed)
                try:
                    results = run_sub_run(sub, config, partial(finetune, config, sub.path, write_report=write_report))
                except TrainingDivergedError as e:  # say which run; finished runs are reused on a rerun
                    raise TrainingDivergedError(f"compare run {sub.path.name}: {e}") from None
                row = run_row(results)
                row["run_dir"] = sub.path.name
                rows.append(row)
                warnings += run_warnings(results, sub.path.name)
        return {"title": f"tunescope: compare {', '.join(strategies)} on {base.model}",
                "model": base.model, "data": base.data, "strategies": strategies, "seeds": seeds,
                "settings": {k: v for k, v in dataclasses.asdict(base).items() if k != "strategy"},
                "comparison": {"runs": rows, "summary": summarise(rows, strategies)}, "warnings": warnings}

    saved = {**dataclasses.asdict(base), "strategies": list(strategies), "seeds": list(seeds)}
    return run_recipe("compare", saved, out_dir, body, write_report=write_report, resume=resume, overwrite=overwrite)


def format_table(summary: list[dict]) -> str:
    """A plain-text table (mean +- std over seeds) of the headline columns, for the terminal."""
    cols = ("accuracy", "baseline_accuracy", "ece", "ece_after_ts", "head_norm_after_lp", "head_norm_after_ft",
            "feature_cosine", "feature_l2", "ft_ratio")
    lines = ["strategy".ljust(10) + "".join(c.rjust(22) for c in cols)]
    for e in summary:
        cells = []
        for c in cols:
            v, s = e.get(c), e.get(f"{c}_std")
            cells.append(("-" if v is None else f"{v:.4g} ± {s:.2g}").rjust(22))
        lines.append(str(e["strategy"]).ljust(10) + "".join(cells))
    return "\n".join(lines)
