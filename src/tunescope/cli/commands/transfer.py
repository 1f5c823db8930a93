"""`tunescope transfer`: source task UNDER/OVER-trained, then target with full / lora / lora-inflection."""

from __future__ import annotations

import argparse


def _transfer(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.transfer import TransferConfig, transfer

    defaults = {}
    if args.limit is not None:  # --limit caps both tasks unless a task-specific limit is given
        defaults = {"source_limit": args.limit, "target_limit": args.limit}
    config = resolve_config(TransferConfig, args, defaults)
    run_dir = make_run_dir(args, "transfer")
    results = transfer(config, run_dir, resume=args.resume, overwrite=args.overwrite)
    t = results["transfer"]
    for regime, src in t["sources"].items():
        note = {True: " (saturated)", False: " (NOT saturated)"}.get(src.get("saturated"), "")
        print(f"source {regime}: {src['epochs']} epochs, final training loss {src['train_loss_final']}{note}")
    print(f"{'regime':8s} {'strategy':16s} {'accuracy':>18s} {'trainable':>12s}")
    for regime, by_strategy in t["summary"].items():
        for strategy, s in by_strategy.items():
            print(f"{regime:8s} {strategy:16s} {s['accuracy_mean']:.4f} +- {s['accuracy_std']:.4f} (n={s['n']}) "
                  f"{s['trainable_params']:>12,}")
    f = t["finding"]
    print(f"paper's finding ({f['criterion']}): {'reproduces' if f['reproduces'] else 'does not reproduce'}"
          if f["reproduces"] is not None else "paper's finding: needs both regimes and lora + lora-inflection")
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("transfer", help="seed-000 experiment: UNDER/OVER source, then full / lora / lora-inflection",
                       description="Source task fine-tuned UNDER (fraction of an epoch) and OVER (saturated), then "
                                   "each source model fine-tuned on the target task with every strategy and seed.")
    add_common_options(p)
    add_config_flags(p, config_class("transfer"))
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="cap examples per split of both tasks (sets source_limit and target_limit; default: none, "
                        "those two apply)")
    p.add_argument("--resume", action="store_true",
                   help="continue the experiment in --out: reuse its finished runs, resume its interrupted one")
    p.set_defaults(handler=_transfer)
