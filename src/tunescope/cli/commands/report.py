"""`tunescope report RUN_DIR`: (re)build report.html from a run directory."""

from __future__ import annotations

import argparse


def _report(args: argparse.Namespace) -> int:
    from tunescope.report.html import build_report

    print(f"report: {build_report(args.run_dir).resolve()}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)build report.html of a run directory")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.set_defaults(handler=_report)
