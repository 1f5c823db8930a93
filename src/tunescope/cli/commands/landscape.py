"""`tunescope landscape`: basin radii along random / worst-case / fine-tuning directions, certified radius."""

from __future__ import annotations

import argparse

LANDSCAPE_FLAGS = {
    "model": "--model",
    "base": "--base",
    "data": "--data",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "directions": "--directions",
    "num_directions": "--num-directions",
    "num_worst": "--num-worst",
    "scope": "--scope",
    "normalization": "--normalization",
    "tau": "--tau",
    "rtol": "--rtol",
    "a_init": "--a-init",
    "worst_scale": "--worst-scale",
    "worst_steps": "--worst-steps",
    "eval_examples": "--eval-examples",
    "eval_batch_size": "--eval-batch-size",
    "at_scale": "--at-scale",
    "confidence": "--confidence",
    "certify_sigma": "--certify-sigma",
    "certify_draws": "--certify-draws",
    "certify_q": "--certify-q",
    "curve_points": "--curve-points",
}


def _landscape(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.landscape import LandscapeConfig, run_landscape, summary_line

    config = resolve_config(LandscapeConfig, args)
    run_dir = make_run_dir(args, "landscape")
    results = run_landscape(config, run_dir)
    print(summary_line(results))
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.common import add_common_options, add_config_flags
    from tunescope.experiments.landscape import LandscapeConfig

    p = sub.add_parser("landscape", help="basin radii along random / worst / sft directions",
                       description="Largest a with S(theta + a delta) >= S(theta) - tau along random (N(0, I)), "
                                   "worst-case (projected gradient ascent) and fine-tuning directions, by "
                                   "bracketing + bisection on both signs; Clopper-Pearson bounds; optional "
                                   "certified radius of the Gaussian-smoothed score. The weights are never changed.")
    add_common_options(p)
    add_config_flags(p, LandscapeConfig, LANDSCAPE_FLAGS)
    p.add_argument("--relative", action="store_const", const=True, default=None,
                   help="read --tau as a relative drop S(theta) * (1 - tau)")
    p.set_defaults(handler=_landscape)
