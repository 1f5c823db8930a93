"""Basin radius: bisection vs a 41-point grid (same function as `tunescope bench landscape`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_landscape.py [directions=6] [model=RUN_DIR] [--json]
"""

import json
import sys

from tunescope.bench import load_benchmark
from tunescope.config import parse_overrides
from tunescope.io import to_jsonable

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--json"]
    result = load_benchmark("landscape")(parse_overrides(argv))
    if "--json" in sys.argv:
        print(json.dumps(to_jsonable(result)))
    else:
        for key, value in result.items():
            print(f"{key:30s} {value:.4g}" if isinstance(value, float) else f"{key:30s} {value}")
