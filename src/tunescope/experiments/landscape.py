"""`tunescope landscape`: basin radii of a model along random, worst-case and fine-tuning directions.

Recipe: load the model (named asset, folder, hub id, or a tunescope run directory -> its final checkpoint)
and a fixed evaluation set (landscape_setup.py) -> measure its basin (landscape/basins.py: S(theta), radii per
direction type by bracketing + bisection on both signs, quantiles, Clopper-Pearson bounds, 1-D curves,
optional certified radius) -> results.json `basin` + report. The weights are never modified
(see landscape/perturb.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunescope.errors import UserError
from tunescope.experiments.landscape_setup import SubjectOptions, is_run_dir
from tunescope.landscape.options import BasinOptions


@dataclass
class LandscapeConfig(BasinOptions, SubjectOptions):
    """What `tunescope landscape` measures: a subject (model + evaluation set) and the basin settings."""

    def validate(self) -> None:
        if "sft" in self.directions and self.base is None and not is_run_dir(self.model):
            raise UserError("the sft direction needs --base CHECKPOINT (the model before fine-tuning), "
                            "unless --model is a tunescope run directory")


def run_landscape(config: LandscapeConfig, run_dir: str | Path, *, write_report: bool = True,
                  overwrite: bool = False) -> dict:
    """Measure the basin of `config.model`; writes RUN_DIR/config.yaml, results.json (`basin`), report.html.

    Runs through run_recipe: RUN_DIR is locked, and a non-empty one is refused unless `overwrite` (cleared first).
    """
    from transformers import set_seed

    from tunescope.experiments.landscape_setup import load_subject
    from tunescope.experiments.recipe import run_recipe
    from tunescope.landscape.basins import measure_basin

    _preflight(config)

    def body(_rd) -> dict:
        set_seed(config.seed)
        subject = load_subject(config)
        basin = measure_basin(subject.model, subject.scorer, subject.scope, config, base_params=subject.base_params,
                              chance=subject.chance)
        results = {"command": "landscape", "model": config.model, "data": subject.data_name, "seed": config.seed,
                   "score_kind": subject.scorer.kind, "basin": basin}
        if subject.run:
            results["run"] = {k: subject.run.get(k) for k in ("model", "strategy", "noise_sigma") if k in subject.run}
        return results

    return run_recipe("landscape", config, run_dir, body, write_report=write_report, overwrite=overwrite)


def _preflight(config: LandscapeConfig) -> None:
    """--model, --base and --scope checked on weightless copies before any data or weights load (preflight.py),
    each given as load_subject will load it."""
    from tunescope.experiments.diagnose import resolve_checkpoint
    from tunescope.experiments.landscape_setup import is_causal_lm
    from tunescope.experiments.preflight import preflight
    from tunescope.models.load import resolve_model_source

    model = resolve_checkpoint(config.model)
    causal = is_causal_lm(resolve_model_source(model))
    base = config.base if "sft" in config.directions else None
    if base and not causal:
        base = resolve_checkpoint(base)  # a classifier's base may be a run directory (load_subject does the same)
    preflight(config, model=model, task="causal-lm" if causal else "classification", checkpoints={"--base": base})


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
