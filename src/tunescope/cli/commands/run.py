"""`tunescope run`: the main job on the default (minilm-l6 on rotten_tomatoes) -> results + report."""

from __future__ import annotations

import argparse

from tunescope.cli.commands.finetune import (
    add_finetune_options,
    baseline_note,
    load_finetune_config,
    print_warnings,
)
from tunescope.cli.common import make_run_dir


def _run(args: argparse.Namespace) -> int:
    from tunescope.experiments.run import main_job

    config = load_finetune_config(args)
    run_dir = make_run_dir(args, "run")
    results = main_job(config, run_dir, resume=args.resume, overwrite=args.overwrite)
    ev = results.get("eval", {})
    print(f"{config.model} on {config.data} with {results.get('strategy', config.strategy)}: test accuracy "
          f"{ev.get('accuracy', 0):.4f}{baseline_note(results)}, {results.get('wall_seconds', 0):.0f} s")
    print_warnings(results)
    print(f"report: {(run_dir / 'report.html').resolve()}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="the main job: fine-tune minilm-l6 on rotten_tomatoes, evaluate, report")
    add_finetune_options(p)
    p.set_defaults(handler=_run)
