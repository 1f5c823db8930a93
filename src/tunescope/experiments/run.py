"""`tunescope run`: the main job - plan -> train the plan's choice -> evaluate -> report (experiments/plan.py).

Default: minilm-l6 on rotten_tomatoes. Which strategy trains is decided by the plan's measurements, rules and
trials (docs/plan.md), not fixed here; `--plan-mode rules` skips the trials, and `tunescope finetune` trains one
strategy as given.
"""

from __future__ import annotations

from pathlib import Path

from tunescope.experiments.plan_config import PlanConfig


def main_job(config: PlanConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Plan, fine-tune the choice and evaluate (see experiments.plan.run_planned); returns the final results.
    `overwrite`: clear a non-empty `run_dir` first (else it is refused unless `resume`)."""
    from tunescope.experiments.plan import run_planned

    return run_planned(config, run_dir, resume=resume, overwrite=overwrite)
