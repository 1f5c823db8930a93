"""tunescope's SFT step vs plain trl, DiagnosticsCallback's amortised cost, SIFT vs LoRA at equal trainable
parameters (same function as `tunescope bench sft`; what each number means: src/tunescope/bench/sft.py).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_sft.py [model=smollm2-135m] [rounds=3] [steps=2] \
        [memory=false] [--json]
"""

import json
import sys

from tunescope.bench import load_benchmark
from tunescope.config import parse_overrides
from tunescope.io import to_jsonable

if __name__ == "__main__":
    argv = [a for a in sys.argv[1:] if a != "--json"]
    result = load_benchmark("sft")(parse_overrides(argv))
    if "--json" in sys.argv:
        print(json.dumps(to_jsonable(result)))
    else:
        for key, value in result.items():
            print(f"{key:30s} {value:.4g}" if isinstance(value, float) else f"{key:30s} {value}")
