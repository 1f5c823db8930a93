"""`tunescope report RUN_DIR`: (re)build report.html from a run directory."""

from __future__ import annotations

import argparse


def _report(args: argparse.Namespace) -> int:
    from tunescope.report.html import build_report

    path = build_report(args.run_dir).resolve()
    args.json_payload = {"report": str(path)}  # what --json prints
    print(f"report: {path}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)build report.html of a run directory",
                       description="Rebuild RUN_DIR/report.html (self-contained) from the run's results.json and "
                                   "the files beside it; nothing is recomputed.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory (holding results.json)")
    p.set_defaults(handler=_report)
