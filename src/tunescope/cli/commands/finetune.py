"""`tunescope finetune --strategy S`: fine-tune a model on a classification data set."""

from __future__ import annotations

import argparse

from tunescope.cli.common import add_common_options, add_config_flags, make_run_dir, resolve_config

# Flags of `finetune` / `run` -> FinetuneConfig fields (every other field is a key=value override).
FINETUNE_FLAGS = {
    "model": "--model",
    "data": "--data",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "strategy": "--strategy",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "learning_rate": "--lr",
    "lora_rank": "--rank",
    "lora_alpha": "--lora-alpha",
    "lora_targets": "--lora-targets",
    "layers": "--layers",
    "max_steps": "--max-steps",
    # SIFT (docs/sift.md)
    "sift_rate": "--sift-rate",
    "sift_targets": "--sift-targets",
    "sift_selection_batches": "--sift-selection-batches",
    "sift_mask": "--sift-mask",
    # GO training (docs/landscape.md)
    "noise_sigma": "--noise-sigma",
}


def add_finetune_options(parser: argparse.ArgumentParser) -> None:
    from tunescope.experiments.finetune import FinetuneConfig

    add_common_options(parser)
    add_config_flags(parser, FinetuneConfig, FINETUNE_FLAGS)
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in --out from its last checkpoint")
    parser.add_argument("--trust-remote-code", dest="trust_remote_code", action="store_const", const=True,
                        default=None, help="allow the model repository to run its own code")


def load_finetune_config(args: argparse.Namespace):
    """The FinetuneConfig of a command; on --resume, the run directory's saved config is the base."""
    from tunescope.config import load_yaml
    from tunescope.errors import UserError
    from tunescope.experiments.finetune import FinetuneConfig

    base = {}
    if getattr(args, "resume", False):
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        saved = make_run_dir(args, "") / "config.yaml"
        if not saved.is_file():
            raise UserError(f"nothing to resume in {args.out!r}: no config.yaml")
        base = load_yaml(saved)
    return resolve_config(FinetuneConfig, args, base)


def _finetune(args: argparse.Namespace) -> int:
    from tunescope.experiments.finetune import finetune

    config = load_finetune_config(args)
    run_dir = make_run_dir(args, f"finetune-{config.strategy}")
    results = finetune(config, run_dir, resume=args.resume)
    from tunescope.training.trainer import is_main_process

    if not is_main_process():
        return 0
    ev = results.get("eval", {})
    print(f"test accuracy {ev.get('accuracy', float('nan')):.4f}  nll {ev.get('nll', float('nan')):.4f}  "
          f"trainable {results.get('trainable_params', 0):,} / {results.get('total_params', 0):,}")
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.strategies import STRATEGIES

    p = sub.add_parser("finetune", help="fine-tune a model with one strategy",
                       description=f"Fine-tune with a strategy: {', '.join(STRATEGIES.names())}.")
    add_finetune_options(p)
    p.set_defaults(handler=_finetune)
