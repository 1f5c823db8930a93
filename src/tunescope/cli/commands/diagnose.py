"""`tunescope diagnose`: per-layer diagnostics of a model, inflection layers, Delta-CKA against a checkpoint."""

from __future__ import annotations

import argparse
import math


def _fmt(v) -> str:
    return f"{v:10.4g}" if isinstance(v, float) and math.isfinite(v) else f"{'-':>10}"


def _diagnose(args: argparse.Namespace) -> int:
    from tunescope.cli.common import make_run_dir, resolve_config
    from tunescope.experiments.diagnose import DiagnoseConfig, diagnose_run

    config = resolve_config(DiagnoseConfig, args)
    run_dir = make_run_dir(args, "diagnose")
    results = diagnose_run(config, run_dir)
    found = results["diagnostics"]
    keys = _printed_keys(found["layers"])
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
    add_config_flags(p, DiagnoseConfig, skip=("metrics",))
    _add_metrics_option(p)
    p.set_defaults(handler=_diagnose)


def _printed_keys(rows: list[dict]) -> list[str]:
    """The registered per-layer keys this table holds, in registry order (delta_cka only with --against)."""
    from tunescope.diagnostics.metrics import table_keys

    return [k for k in table_keys() if any(isinstance(r.get(k), float) and math.isfinite(r[k]) for r in rows)]


def _metric_list(text: str) -> list[str]:
    """argparse type of --metrics: a comma-separated list of registered metric names."""
    from tunescope.diagnostics.metrics import check_metrics
    from tunescope.errors import UserError

    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return list(check_metrics(names))
    except UserError as e:  # argparse turns this into its one-line usage error, exit 2
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_metrics_option(p: argparse.ArgumentParser) -> None:
    """--metrics, its choices and their definitions listed from the metric registry."""
    from tunescope.diagnostics.layerwise import SELECTION_METRICS
    from tunescope.diagnostics.metrics import layer_metrics

    choices = ", ".join(f"{m.name} ({m.label})" for m in layer_metrics(recorded_only=True))
    p.add_argument("--metrics", dest="metrics", type=_metric_list, default=None, metavar="NAME,...",
                   help=(f"per-layer metrics to record, comma-separated (default: all): {choices}. "
                         f"{' and '.join(SELECTION_METRICS)} are always recorded: the selection reads them."
                         ).replace("%", "%%"))
