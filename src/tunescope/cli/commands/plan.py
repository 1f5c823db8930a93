"""`tunescope plan`: measure the pre-trained model, apply the decision rules, try the best candidates briefly ->
the chosen strategy and settings with their reasons (plan.json, results.json `plan`, report.html)."""

from __future__ import annotations

import argparse


def print_plan(block: dict) -> None:
    """The plan in a few lines: the choice and why, each rule that fired, each rejection, the trials."""
    settings = ", ".join(f"{k}={v}" for k, v in block["settings"].items() if v is not None)
    print(f"plan: {block['strategy']} ({settings}); {block['trainable_params']:,} trainable of "
          f"{block['total_params']:,}; {block['because']}")
    for rule in block["rules_fired"]:
        print(f"  rule {rule['name']} [{rule['paper']}]: {rule['because']} -> {rule['effect']}")
    for r in block["rejected"]:
        print(f"  rejected {r['strategy']} ({r['rule']}): {r['reason']}")
    for t in block["trials"]:
        curve = ", ".join(f"step {r['step']}: {r['validation_accuracy']:.3f}" for r in t["rungs"])
        print(f"  trial {t['strategy']} [{t['status']}]: {curve or t['reason']}")
    print(f"  plan time {block['seconds']:.0f} s ({block['trial_steps']} trial steps)")


def _plan(args: argparse.Namespace) -> int:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.plan import plan
    from tunescope.io import is_main_process

    config = resolve_config(config_class("plan"), args)
    run_dir = make_run_dir(args, "plan")
    results = plan(config, run_dir, overwrite=args.overwrite)
    if is_main_process():
        print_plan(results["plan"])
        print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser(
        "plan", help="diagnose the model on the data and choose a strategy and its settings (with short trials)",
        description="Cheap measurements from the five papers (attention entropy and gradient decay per layer, "
                    "output saturation, linear-probe accuracy and head-norm growth, gradient quasi-sparsity), the "
                    "decision rules of docs/plan.md, then successive-halving trials of the candidates the "
                    "rules leave on the validation split, within --budget-params / --budget-minutes.")
    add_common_options(p)
    add_config_flags(p, config_class("plan"))
    p.set_defaults(handler=_plan)
