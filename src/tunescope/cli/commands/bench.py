"""`tunescope bench NAME [key=value ...] [--json]`: benchmarks that print ratios measured side by side in one process;
`tunescope bench` alone lists them.

The list (here and in `tunescope bench --help`) gives each benchmark's one-line summary: the first line of its
module's docstring, read from the source without importing the module (importing a benchmark loads torch).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path


def summaries() -> dict[str, str]:
    """{benchmark name: one-line summary} for every benchmark in bench.BENCHMARK_MODULES."""
    from tunescope.bench import BENCHMARK_MODULES

    out = {}
    for name, module in BENCHMARK_MODULES.items():
        spec = importlib.util.find_spec(module)
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
        first = (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
        out[name] = first.removeprefix(f"`tunescope bench {name}`:").strip()
    return out


def listing() -> str:
    """One line per benchmark: its name and summary."""
    found = summaries()
    width = max(map(len, found), default=0)
    return "\n".join(f"  {name:<{width}}  {summary}" for name, summary in found.items())


def _key_width(result: dict, indent: str = "") -> int:
    """The longest indented key of a result, nested dicts included."""
    return max((_key_width(v, indent + "  ") if isinstance(v, dict) else len(indent + k) for k, v in result.items()),
               default=0)


def result_lines(result: dict, indent: str = "", width: int | None = None) -> Iterator[str]:
    """`key value` lines of a benchmark's result, values in one column; a dict value gets its own indented lines."""
    width = width or max(28, _key_width(result, indent) + 1)
    for key, value in result.items():
        if isinstance(value, dict):
            yield f"{indent}{key}"
            yield from result_lines(value, indent + "  ", width)
        elif isinstance(value, float):
            yield f"{indent + key:{width}s} {value:.4g}"
        else:
            yield f"{indent + key:{width}s} {value}"


def _bench(args: argparse.Namespace) -> int:
    from tunescope.io import to_jsonable

    if args.name is None:  # no name: the list, as the results of this command
        if args.json:
            print(json.dumps(summaries()))
        else:
            print("benchmarks (tunescope bench NAME [key=value ...]):")
            print(listing())
        return 0
    from tunescope.bench import load_benchmark
    from tunescope.config import parse_overrides

    fn = load_benchmark(args.name)
    result = fn(parse_overrides(args.options))
    if args.json:
        print(json.dumps(to_jsonable(result)))
    else:
        for line in result_lines(result):
            print(line)
    return 0


def register(sub) -> None:
    from tunescope.bench import BENCHMARK_MODULES

    p = sub.add_parser("bench", help="run a benchmark (" + ", ".join(BENCHMARK_MODULES) + "); alone: list them",
                       description="Run benchmark NAME and print its figures; without NAME, list the benchmarks.",
                       epilog="benchmarks:\n" + listing(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", nargs="?", default=None,
                   help="benchmark name (default: none, list the benchmarks)")
    p.add_argument("options", nargs="*", metavar="key=value",
                   help="benchmark options, e.g. repeats=3 (default: the benchmark's own; an unknown key lists the "
                        "accepted ones)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_bench)
