"""`tunescope run`: the main job - plan (measure, decide, try) -> train the chosen candidate -> evaluate -> report.

Default: minilm-l6 on rotten_tomatoes. The winner of the plan's trials continues from its trial checkpoint, so its
trial steps are not trained twice; the plan lives in RUN/plan (plan.json, trial checkpoints, its own report).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tunescope.cli.commands.finetune import baseline_note, print_warnings
from tunescope.cli.common import make_run_dir


def _config(args: argparse.Namespace):
    """The run's PlanConfig; on --resume the saved one (RUN/plan/config.yaml) is the base and must not change."""
    from tunescope.cli.commands import config_class
    from tunescope.cli.commands.finetune import _check_same_as_saved
    from tunescope.cli.common import resolve_config
    from tunescope.config import load_yaml
    from tunescope.errors import UserError
    from tunescope.experiments.plan import PLAN_FOLDER

    base = {}
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        saved = Path(args.out) / PLAN_FOLDER / "config.yaml"
        if not saved.is_file():
            raise UserError(f"nothing to resume in {args.out!r}: no {PLAN_FOLDER}/config.yaml")
        base = load_yaml(saved)
    config = resolve_config(config_class("run"), args, base)
    if base:
        _check_same_as_saved(config, base, args.out)
    return config


def _run(args: argparse.Namespace) -> int:
    from tunescope.cli.commands.plan import print_plan
    from tunescope.experiments.run import main_job
    from tunescope.io import is_main_process

    config = _config(args)
    run_dir = make_run_dir(args, "run")
    results = main_job(config, run_dir, resume=args.resume, overwrite=args.overwrite)
    if not is_main_process():
        return 0
    ev = results.get("eval", {})
    print(f"{config.model} on {config.data} with {results.get('strategy', config.strategy)}: test accuracy "
          f"{ev.get('accuracy', 0):.4f}{baseline_note(results)}, {results.get('wall_seconds', 0):.0f} s "
          "(plan included)")
    if "plan" in results:
        print_plan(results["plan"])
    print_warnings(results)
    print(f"report: {(run_dir / 'report.html').resolve()}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("run", help="the main job: plan the fine-tuning of minilm-l6 on rotten_tomatoes, train the "
                                   "choice, evaluate, report",
                       description="Plan (measure, decide, try: see `tunescope plan`), then train the chosen "
                                   "strategy to the end from its trial checkpoint, evaluate on the test split and "
                                   "write report.html, whose first lines say what was chosen and why.")
    add_common_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out (the plan is reused when it finished)")
    add_config_flags(p, config_class("run"))
    p.set_defaults(handler=_run)
