"""`tunescope landscape`: basin radii of a model along random, worst-case and fine-tuning directions.

Recipe: load the model (named asset, folder, hub id, or a tunescope run directory -> its final checkpoint)
and a fixed evaluation set (landscape_setup.py) -> measure its basin (landscape/basins.py: S(theta), radii per
direction type by bracketing + bisection on both signs, quantiles, Clopper-Pearson bounds, 1-D curves,
optional certified radius) -> results.json `basin` + report. The weights are never modified
(see landscape/perturb.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tunescope.config import save_config
from tunescope.errors import UserError
from tunescope.experiments.landscape_setup import SubjectOptions, is_run_dir
from tunescope.io import atomic_write_json
from tunescope.landscape.options import BasinOptions


@dataclass
class LandscapeConfig(BasinOptions, SubjectOptions):
    """What `tunescope landscape` measures: a subject (model + evaluation set) and the basin settings."""

    def validate(self) -> None:
        if "sft" in self.directions and self.base is None and not is_run_dir(self.model):
            raise UserError("the sft direction needs --base CHECKPOINT (the model before fine-tuning), "
                            "unless --model is a tunescope run directory")


def run_landscape(config: LandscapeConfig, run_dir: str | Path, *, write_report: bool = True) -> dict:
    """Measure the basin of `config.model`; writes RUN_DIR/config.yaml, results.json (`basin`), report.html."""
    from transformers import set_seed

    from tunescope.experiments.landscape_setup import load_subject
    from tunescope.landscape.basins import measure_basin

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
