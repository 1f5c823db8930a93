"""`tunescope finetune --strategy S`: fine-tune a model on a classification data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunescope.cli.common import (
    add_common_options,
    add_config_flags,
    make_run_dir,
    resolve_config,
)


def add_finetune_options(parser: argparse.ArgumentParser) -> None:
    from tunescope.cli.commands import config_class

    add_common_options(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out from its last checkpoint")
    add_config_flags(parser, config_class("finetune"))


def load_finetune_config(args: argparse.Namespace, config_class=None):
    """The FinetuneConfig (or `config_class`, e.g. SFTConfig) of a command; on --resume, the run directory's saved
    config is the base."""
    from tunescope.config import load_yaml
    from tunescope.errors import UserError
    from tunescope.experiments.finetune import FinetuneConfig

    base = {}
    if getattr(args, "resume", False):
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        saved = Path(args.out) / "config.yaml"
        if not saved.is_file():
            raise UserError(f"nothing to resume in {args.out!r}: no config.yaml")
        base = load_yaml(saved)
    config = resolve_config(config_class or FinetuneConfig, args, base)
    if base:
        _check_same_as_saved(config, base, args.out)
    return config


def _check_same_as_saved(config, saved: dict, out: str) -> None:
    """A resumed run keeps its saved config: its checkpoints hold that strategy's weights and optimizer state, and
    its results.json must describe one config. A value given with --resume must equal the saved one."""
    from tunescope.errors import UserError
    from tunescope.experiments.rundir import config_as_saved

    current = config_as_saved(config)
    for key, value in saved.items():  # the keys config.yaml holds (all of them, for a run tunescope wrote)
        if key in current and current[key] != value:
            flag = "--" + key.replace("_", "-")
            raise UserError(f"bad value {current[key]!r} for {flag}: the run in {out!r} was made with {key} "
                            f"{value!r}, and a resumed run keeps its saved config; resume it without {flag} (or "
                            "with the same value), or start a new run in another --out")


def baseline_note(results: dict) -> str:
    """' (majority-class baseline 0.5000)' to print beside the test accuracy; '' when the run has none."""
    baseline = results.get("baseline") or {}
    return f" (majority-class baseline {baseline['accuracy']:.4f})" if "accuracy" in baseline else ""


def print_warnings(results: dict) -> None:
    """One stdout line 'warning: MESSAGE' per results.json warning (e.g. a collapse), so that a score is never
    printed without what makes it untrustworthy."""
    for warning in results.get("warnings") or []:
        print(f"warning: {warning.get('message', warning.get('kind', ''))}")


def _finetune(args: argparse.Namespace) -> int:
    from tunescope.experiments.finetune import finetune

    config = load_finetune_config(args)
    run_dir = make_run_dir(args, f"finetune-{config.strategy}")
    results = finetune(config, run_dir, resume=args.resume, overwrite=args.overwrite)
    from tunescope.io import is_main_process

    if not is_main_process():
        return 0
    ev = results.get("eval", {})
    print(f"test accuracy {ev.get('accuracy', float('nan')):.4f}{baseline_note(results)}  "
          f"nll {ev.get('nll', float('nan')):.4f}  "
          f"trainable {results.get('trainable_params', 0):,} / {results.get('total_params', 0):,}")
    print_warnings(results)
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    # The registry's names, read without importing the strategies (torch, peft).
    from tunescope.strategies.options import STRATEGY_NAMES

    p = sub.add_parser("finetune", help="fine-tune a model with one strategy",
                       description=f"Fine-tune with a strategy: {', '.join(STRATEGY_NAMES)}.")
    add_finetune_options(p)
    p.set_defaults(handler=_finetune)
