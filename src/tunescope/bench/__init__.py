"""Benchmarks behind `tunescope bench NAME`: each measures ratios side by side in one process.

A benchmark is `fn(options: dict) -> dict` registered in BENCHMARKS; `benchmarks/bench_<name>.py`
calls the same function. Modules are imported lazily so `tunescope --help` stays fast.
"""

from __future__ import annotations

import importlib

from tunescope.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")

# name -> module that registers it (imported on demand).
BENCHMARK_MODULES: dict[str, str] = {
    "diagnostics": "tunescope.bench.diagnostics",
    "sift": "tunescope.bench.sift",
    "landscape": "tunescope.bench.landscape",
    "jump": "tunescope.bench.jump",
}


def load_benchmark(name: str):
    """The benchmark function registered as `name` (imports its module first)."""
    if name in BENCHMARK_MODULES and name not in BENCHMARKS:
        importlib.import_module(BENCHMARK_MODULES[name])
    if name not in BENCHMARKS:
        # Unknown: the error lists every benchmark we know of, registered or not yet imported.
        from tunescope.errors import UnknownNameError

        raise UnknownNameError("benchmark", name, BENCHMARK_MODULES)
    return BENCHMARKS.get(name)
