"""`tunescope jump --model A --model B ...`: displacement profile Psi_l, jump rate zeta and J per model."""

from __future__ import annotations

import argparse


def _jump(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.jump import JumpConfig, run_jump

    config = resolve_config(JumpConfig, args)
    out = make_run_dir(args, "jump")
    entries = run_jump(config, out)["jump"]["models"]
    print(f"final-layer jump on {config.data} ({entries[0]['tokens']:,} tokens of held-out text per model)")
    width = max(len(e["model"]) for e in entries) + 2
    print(f"{'model':<{width}}{'layers':>7}{'Psi_1':>9}{'mean Psi':>10}{'Psi_L':>9}{'zeta_L':>9}{'J':>8}")
    for e in entries:
        mid = sum(e["psi"][:-1]) / max(len(e["psi"]) - 1, 1)
        print(f"{e['model']:<{width}}{e['layers']:>7}{e['psi'][0]:>9.4f}{mid:>10.4f}{e['psi'][-1]:>9.4f}"
              f"{e['zeta'][-1]:>9.3f}{e['J']:>8.2f}")
    print(f"plot: {out / 'jump_profile.png'}")
    print(f"report: {out / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags, default_text

    p = sub.add_parser("jump", help="displacement profile Psi_l, jump rate zeta and J per model",
                       description="Measure how far each transformer block turns the residual stream "
                                   "(Psi_l = (1 - cos(h_{l-1}, h_l)) / 2, averaged over valid tokens) for one or "
                                   "more models on the same held-out text, from one forward pass per batch. "
                                   "A pretrain run directory expands to all of its checkpoints.")
    config = config_class("jump")
    p.add_argument("--model", dest="models", action="append", default=None, metavar="MODEL",
                   help="model to measure (repeat for several): named asset, folder, hub id or pretrain run dir "
                        f"(default: {default_text(config, 'models')})")
    add_common_options(p)
    add_config_flags(p, config, skip=("models",))
    p.set_defaults(handler=_jump)
