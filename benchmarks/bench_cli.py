"""Seconds of `tunescope --help` and of every `tunescope CMD --help` (same function as `tunescope bench cli`).

    .venv/bin/python benchmarks/bench_cli.py [repeats=5] [--json]
"""

import json
import sys

from tunescope.bench import load_benchmark
from tunescope.cli.commands.bench import result_lines
from tunescope.config import parse_overrides
from tunescope.io import to_jsonable

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--json"]
    result = load_benchmark("cli")(parse_overrides(argv))
    if "--json" in sys.argv:
        print(json.dumps(to_jsonable(result)))
    else:
        for line in result_lines(result):
            print(line)
