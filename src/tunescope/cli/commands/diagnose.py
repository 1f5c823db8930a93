"""`tunescope diagnose`: per-layer diagnostics of a model, inflection layers, Delta-CKA against a checkpoint."""

from __future__ import annotations

import argparse
import math

DIAGNOSE_FLAGS = {
    "model": "--model",
    "data": "--data",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "against": "--against",
    "probe_batches": "--probe-batches",
    "probe_batch_size": "--probe-batch-size",
    "inflection_width": "--width",
}


def _fmt(v) -> str:
    return f"{v:10.4g}" if isinstance(v, float) and math.isfinite(v) else f"{'-':>10}"


def _diagnose(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.diagnose import DiagnoseConfig, diagnose_run

    config = resolve_config(DiagnoseConfig, args)
    run_dir = make_run_dir(args, "diagnose")
    results = diagnose_run(config, run_dir)
    found = results["diagnostics"]
    keys = ["attn_entropy", "attn_entropy_norm", "act_grad_norm", "param_grad_norm", "param_grad_rel"]
    if config.against:
        keys.append("delta_cka")
    print("layer " + " ".join(f"{k[:10]:>10}" for k in keys) + "  score")
    for row, score in zip(found["layers"], found["scores"]):
        mark = "  <- inflection" if row["layer"] in found["inflection_layers"] else ""
        print(f"{row['layer']:5d} " + " ".join(_fmt(row.get(k)) for k in keys) + f" {score:6.2f}{mark}")
    print(f"inflection layers: {found['inflection_layers']} ({found['reason']})")
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.common import add_common_options, add_config_flags
    from tunescope.experiments.diagnose import DiagnoseConfig

    p = sub.add_parser("diagnose", help="per-layer diagnostics and inflection layers of a model",
                       description="Attention entropy, activation/parameter gradient norms and (with --against) "
                                   "Delta-CKA per layer on probe batches, in one forward+backward pass; selects the "
                                   "inflection layers.")
    add_common_options(p)
    add_config_flags(p, DiagnoseConfig, DIAGNOSE_FLAGS)
    p.set_defaults(handler=_diagnose)
