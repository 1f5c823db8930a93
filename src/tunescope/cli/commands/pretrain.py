"""`tunescope pretrain`: small Llama-style pre-training with checkpoints, jump profiles and optional JREG."""

from __future__ import annotations

import argparse
from pathlib import Path


def _saved_config(args: argparse.Namespace) -> dict:
    """On --resume, the run's saved config.yaml: the base the given flags override (so the run continues with the
    settings it was started with, not the defaults); {} otherwise."""
    from tunescope.config import load_yaml
    from tunescope.errors import UserError

    if not args.resume:
        return {}
    if not args.out:
        raise UserError("bad value None for --out: --resume needs the run directory to continue (--out DIR)")
    saved = Path(args.out) / "config.yaml"
    if not saved.is_file():
        raise UserError(f"nothing to resume in {args.out!r}: no config.yaml")
    return load_yaml(saved)


def _pretrain(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.pretrain import PretrainConfig, pretrain

    config = resolve_config(PretrainConfig, args, _saved_config(args))
    out = make_run_dir(args, "pretrain")
    res = pretrain(config, out, resume=args.resume, overwrite=args.overwrite)
    print(f"pre-trained {res['model']} ({res['total_params']:,} parameters) on {res['data']} for "
          f"{res['steps']} steps, JREG lambda {res['jreg']['lambda']} ({res['jreg']['form']})")
    print(f"{'step':>6}{'held-out loss':>15}{'ppl':>10}{'Psi_L':>9}{'zeta_L':>9}{'J':>8}")
    for c in res["checkpoints"]:
        print(f"{c['step']:>6}{c['heldout_loss']:>15.4f}{c['heldout_ppl']:>10.1f}{c['psi'][-1]:>9.4f}"
              f"{c['zeta'][-1]:>9.3f}{c['J']:>8.2f}")
    if "probe" in res:
        print(f"linear probe on {res['probe']['data']}: accuracy {res['probe']['accuracy']:.4f}")
    print(f"checkpoints: {out / 'checkpoints'}")
    print(f"report: {out / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("pretrain", help="pre-train a small Llama-style model (optionally with JREG)",
                       description="Pre-train a Llama-style model of a size preset on a text corpus with a BPE "
                                   "tokenizer trained on it. At each checkpoint step: safetensors weights, "
                                   "held-out loss and the jump profile. --jreg LAMBDA adds lambda * R, the jump "
                                   "penalty computed from the same forward pass. --limit caps corpus documents, "
                                   "--max-length sets the block size.")
    add_common_options(p)
    add_config_flags(p, config_class("pretrain"))
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.set_defaults(handler=_pretrain)
