"""`tunescope ntk`: eNTK split P + F, the FT ratio and the rank of P at the start of fine-tuning."""

from __future__ import annotations

import argparse


def _ntk(args: argparse.Namespace) -> int:
    import dataclasses

    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.config import load_yaml
    from tunescope.errors import UserError
    from tunescope.experiments.ntk import NTKConfig, run_ntk

    base = {}
    if args.run:
        from pathlib import Path

        saved = Path(args.run) / "config.yaml"
        if not saved.is_file():
            raise UserError(f"bad value {args.run!r} for --run: expected a run directory with config.yaml")
        names = {f.name for f in dataclasses.fields(NTKConfig)}
        base = {k: v for k, v in load_yaml(saved).items() if k in names}
    config = resolve_config(NTKConfig, args, base)
    out = make_run_dir(args, f"ntk-{config.strategy}")
    res = run_ntk(config, out)["ntk"]
    if res.get("n_samples"):
        print(f"FT ratio {res['ft_ratio']:.4g}  (n={res['n_samples']}, {res['num_backbone_params']:,} params in F, "
              f"{'exact' if res['exact'] else 'count sketch m=' + str(res['sketch_dim'])})")
        print(f"rank of P {res['pre_train_rank']}  effective rank of P {res['pre_train_effective_rank']:.2f}  "
              f"effective rank of F {res['ft_effective_rank']:.2f}  tr F / tr(P+F) {res['ft_trace_share']:.3g}  "
              f"sketch diag error {res['sketch_diag_rel_error']:.2g}  ({res['seconds']:.0f} s)")
    else:
        print(f"FT ratio 0 ({res.get('note')})")
    print(f"report: {out / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("ntk", help="eNTK decomposition P + F and FT ratio for a model (or a run's setting)",
                       description="Prepare the model as --strategy would at the start of fine-tuning and compute "
                                   "the pre-train-effective kernel P, the FT-effective kernel F, the FT ratio and "
                                   "the rank of P on --samples training examples.")
    add_common_options(p)
    add_config_flags(p, config_class("ntk"))
    p.add_argument("--run", metavar="RUN_DIR", default=None,
                   help="take model, data, strategy, seed, limit and max_length from a fine-tuning run's config.yaml "
                        "(default: none)")
    p.set_defaults(handler=_ntk)
