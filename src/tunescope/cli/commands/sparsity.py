"""`tunescope sparsity`: share of the squared gradient norm carried by the top p% of entries."""

from __future__ import annotations

import argparse


def _sparsity(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.sparsity import SparsityConfig, run_sparsity

    config = resolve_config(SparsityConfig, args)
    out = make_run_dir(args, "sparsity")
    res = run_sparsity(config, out)["sparsity"]
    fr = res["fractions"]
    tokens = f", {res['loss_tokens']:,} loss tokens" if "loss_tokens" in res else ""
    print(f"gradient quasi-sparsity of {config.model} on {config.data} ({res['examples']} examples{tokens}, "
          f"{res['num_params']:,} entries)")
    print("top p% of entries:        " + "  ".join(f"{100 * p:>6g}%" for p in fr))
    # One row per pool of entries: all measured, SIFT's attention targets, then each tensor kind (q_proj, ...).
    rows = [("share of ||g||^2, all", res), ("attention q,k,v,o", res["attention_qkvo"])]
    rows += [(f"  {kind}", part) for kind, part in res["per_kind"].items()]
    for label, part in rows:
        print(f"{label:<26}" + "  ".join(f"{100 * part['overall'][str(p)]:>6.2f}%" for p in fr)
              + f"   99% of ||g||^2 in the top {100 * part['entries_for_99']:.2f}% of entries")
    print(f"report: {out / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("sparsity", help="gradient quasi-sparsity (share of the gradient norm in the top p%%)",
                       description="Sum the training-loss gradient of a pre-trained model over a few batches and "
                                   "report, per tensor and overall, the share of the squared gradient norm carried "
                                   "by the largest 0.1 / 1 / 5 / 10 % of entries (SIFT's quasi-sparsity), also "
                                   "per tensor kind (q_proj, gate_proj, ... pooled over the blocks). SFT data "
                                   "(or --task causal-lm) measures a decoder's SFT loss (completion tokens only).")
    add_common_options(p)
    add_config_flags(p, config_class("sparsity"))
    p.set_defaults(handler=_sparsity)
