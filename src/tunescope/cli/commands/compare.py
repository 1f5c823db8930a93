"""`tunescope compare --strategies a,b,c [--seeds 0,1,2]`: several strategies, same data and seeds."""

from __future__ import annotations

import argparse

from tunescope.errors import UserError


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"bad value {text!r} for {flag}: expected comma-separated integers, e.g. 0,1,2") from None


def _compare(args: argparse.Namespace) -> int:
    from tunescope.cli.commands.finetune import print_warnings
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.compare import format_table, run_compare
    from tunescope.experiments.finetune import FinetuneConfig

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = _int_list(args.seeds, "--seeds") if args.seeds else [args.seed if args.seed is not None else 0]
    base = resolve_config(FinetuneConfig, args, {"strategy": strategies[0]} if strategies else None)
    out = make_run_dir(args, "compare")
    comparison = run_compare(base, strategies, seeds, out, resume=args.resume, overwrite=args.overwrite)
    print(format_table(comparison["comparison"]["summary"]))
    print_warnings(comparison)  # each message names its run (OUT/<strategy>-seed<s>)
    print(f"report: {out / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("compare", help="run several strategies on the same data and seeds; one table + report",
                       description="Fine-tune once per strategy and seed (runs in OUT/<strategy>-seed<s>/; with "
                                   "--resume, finished ones are reused and interrupted ones continued) and compare "
                                   "accuracy, calibration, head norms, feature change and the FT ratio.")
    p.add_argument("--resume", action="store_true",
                   help="continue the comparison in --out: reuse its finished runs, resume its interrupted one")
    p.add_argument("--strategies", required=True, help="comma-separated strategies, e.g. head,full,lora,lp-ft,lp-lora")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed, or 0)")
    add_common_options(p)
    add_config_flags(p, config_class("compare"), skip=("strategy",))
    p.set_defaults(handler=_compare)
