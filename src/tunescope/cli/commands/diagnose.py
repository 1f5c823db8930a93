"""`tunescope diagnose`: per-layer diagnostics of a model, inflection layers, Delta-CKA against a checkpoint; a
classifier on its label loss or a causal LM on the SFT loss (`--task causal-lm`, the default for SFT data)."""

from __future__ import annotations

import argparse
import math
import sys


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
    if results.get("task") == "causal-lm":
        print(f"loss: SFT loss on the {results['preparation']['loss_on']} tokens "
              f"({found['probe_loss_tokens']:,} of {found['probe_tokens']:,} probe tokens)")
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class
    from tunescope.cli.common import add_common_options, add_config_flags

    p = sub.add_parser("diagnose", help="per-layer diagnostics and inflection layers of a model",
                       description="Attention entropy, activation/parameter gradient norms and (with --against) "
                                   "Delta-CKA per layer on probe batches, in one forward+backward pass; selects the "
                                   "inflection layers. A classifier is measured on its label loss; a causal LM on "
                                   "SFT data (--task causal-lm, the default for SFT data) on the SFT loss, the "
                                   "completion tokens only.")
    add_common_options(p)
    add_config_flags(p, config_class("diagnose"), skip=("metrics",))
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


# The metrics the selection always records, written out for --help (tests/unit/test_cli_imports.py checks them
# against diagnostics.layerwise.SELECTION_METRICS).
HELP_SELECTION_METRICS: tuple[str, ...] = ("attn_entropy", "act_grad_norm")


def _registered_metrics() -> str:
    """The registry's recorded metrics, 'name (label)', when the registry is already loaded (a notebook, a test, a
    plug-in that registered its own); otherwise a pointer: loading it imports torch, which --help must not."""
    if "tunescope.diagnostics.metrics" not in sys.modules:
        return "every registered one; `tunescope diagnose` records and lists them, docs/diagnostics.md explains them"
    metrics = sys.modules["tunescope.diagnostics.metrics"].layer_metrics(recorded_only=True)
    return ", ".join(f"{m.name} ({m.label})" for m in metrics)


def _add_metrics_option(p: argparse.ArgumentParser) -> None:
    """--metrics; the value is checked against the metric registry."""
    choices = _registered_metrics()
    p.add_argument("--metrics", dest="metrics", type=_metric_list, default=None, metavar="NAME,...",
                   help=(f"per-layer metrics to record, comma-separated (default: all): {choices}. "
                         f"{' and '.join(HELP_SELECTION_METRICS)} are always recorded: the selection reads them."
                         ).replace("%", "%%"))
