"""`tunescope bench NAME [--json]`: benchmarks that print ratios measured side by side in one process."""

from __future__ import annotations

import argparse
import json


def _bench(args: argparse.Namespace) -> int:
    from tunescope.bench import load_benchmark
    from tunescope.config import parse_overrides
    from tunescope.io import to_jsonable

    fn = load_benchmark(args.name)
    result = fn(parse_overrides(args.options))
    if args.json:
        print(json.dumps(to_jsonable(result)))
    else:
        for key, value in result.items():
            print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    return 0


def register(sub) -> None:
    from tunescope.bench import BENCHMARK_MODULES

    p = sub.add_parser("bench", help="run a benchmark (" + ", ".join(BENCHMARK_MODULES) + ")")
    p.add_argument("name", metavar="NAME", help="benchmark name")
    p.add_argument("options", nargs="*", metavar="key=value", help="benchmark options, e.g. steps=5")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_bench)
