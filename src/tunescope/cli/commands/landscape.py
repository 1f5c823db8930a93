"""`tunescope landscape`: basin radii along random / worst-case / fine-tuning directions, certified radius."""

from __future__ import annotations

import argparse


def _landscape(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.landscape import (
        LandscapeConfig,
        run_landscape,
        summary_line,
    )

    config = resolve_config(LandscapeConfig, args)
    run_dir = make_run_dir(args, "landscape")
    results = run_landscape(config, run_dir)
    print(summary_line(results))
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("landscape", help="basin radii along random / worst / sft directions",
                       description="Largest a with S(theta + a delta) >= S(theta) - tau along random (N(0, I)), "
                                   "worst-case (projected gradient ascent) and fine-tuning directions, by "
                                   "bracketing + bisection on both signs; Clopper-Pearson bounds; optional "
                                   "certified radius of the Gaussian-smoothed score. The weights are never changed.")
    add_common_options(p)
    add_config_flags(p, config_class("landscape"))
    p.set_defaults(handler=_landscape)
