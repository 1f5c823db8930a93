"""Jump measurement vs plain forward throughput (same function as `tunescope bench jump`).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_jump.py [model=minilm-l6] [repeats=5] [--json]
"""

import json
import sys

from tunescope.bench import load_benchmark
from tunescope.config import parse_overrides
from tunescope.io import to_jsonable

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--json"]
    result = load_benchmark("jump")(parse_overrides(argv))
    if "--json" in sys.argv:
        print(json.dumps(to_jsonable(result)))
    else:
        for key, value in result.items():
            print(f"{key:24s} {value:.4g}" if isinstance(value, float) else f"{key:24s} {value}")
