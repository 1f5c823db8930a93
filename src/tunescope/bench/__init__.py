"""Benchmarks behind `tunescope bench NAME`: each measures ratios side by side in one process.

A benchmark is `fn(options: dict) -> dict` registered in BENCHMARKS; `benchmarks/bench_<name>.py`
calls the same function. Modules are imported lazily so `tunescope --help` stays fast.

`load_benchmark(name)` returns the function behind a check of its options against BENCHMARK_OPTIONS: an unknown
key or a value of the wrong type is a UserError (exit 2, one line) before anything is measured, instead of a
ValueError traceback from deep inside the benchmark, or an option silently ignored after minutes of measuring.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from tunescope.errors import UserError
from tunescope.registry import Registry

BENCHMARKS: Registry = Registry("benchmark")

# name -> module that registers it (imported on demand).
BENCHMARK_MODULES: dict[str, str] = {
    "diagnostics": "tunescope.bench.diagnostics",
    "sift": "tunescope.bench.sift",
    "landscape": "tunescope.bench.landscape",
    "jump": "tunescope.bench.jump",
    "sft": "tunescope.bench.sft",
    "cli": "tunescope.bench.cli",
}

# name -> the options (key=value) that benchmark reads, with their types. Values arrive as text from the command
# line; they are converted here, so the benchmarks receive ints, floats and bools.
BENCHMARK_OPTIONS: dict[str, dict[str, type]] = {
    "diagnostics": {"model": str, "data": str, "batch_size": int, "seq_len": int, "repeats": int, "device": str,
                    "threads": int, "only": str},
    "sift": {"model": str, "batch_size": int, "seq_len": int, "rate": float, "steps": int, "warmup": int,
             "memory": bool},
    "landscape": {"model": str, "directions": int, "grid_points": int, "rtol": float, "tau": float, "a_init": float,
                  "seed": int, "eval_examples": int, "max_length": int, "limit": int, "threads": int},
    "jump": {"model": str, "data": str, "batch_size": int, "seq_len": int, "batches": int, "repeats": int,
             "device": str},
    "sft": {"model": str, "data": str, "batch_size": int, "max_length": int, "limit": int, "rounds": int,
            "steps": int, "every": int, "rank": int, "memory": bool, "quick": bool, "threads": int},
    "cli": {"repeats": int},
}
_TYPE_WORDS = {int: ("N", "an integer"), float: ("X", "a number"), bool: ("true|false", "true or false"),
               str: ("TEXT", "text")}
_BOOLS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _convert(value: Any, kind: type) -> Any:
    """`value` as `kind` (ValueError when it is not one); text is parsed, values of the right type pass through."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        return _BOOLS[str(value).strip().lower()]  # KeyError -> caller
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    return kind(str(value).strip()) if kind is not str else str(value)


def check_benchmark_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of benchmark `name`, converted to their types; UserError naming the first unknown key or bad value
    and listing what the benchmark accepts."""
    accepted = BENCHMARK_OPTIONS[name]
    listing = " ".join(f"{k}={_TYPE_WORDS[t][0]}" for k, t in accepted.items())
    out = {}
    for key, value in options.items():
        if key not in accepted:
            raise UserError(f"bad benchmark option {key!r} for `tunescope bench {name}`: unknown; accepted: {listing}")
        try:
            out[key] = _convert(value, accepted[key])
        except (KeyError, ValueError):
            raise UserError(f"bad benchmark option {key}={value!r} for `tunescope bench {name}`: expected "
                            f"{_TYPE_WORDS[accepted[key]][1]}; accepted: {listing}") from None
    return out


def load_benchmark(name: str) -> Callable[[Mapping[str, Any]], dict]:
    """The benchmark function registered as `name` (imports its module first), checking its options first when
    BENCHMARK_OPTIONS declares them."""
    if name in BENCHMARK_MODULES and name not in BENCHMARKS:
        importlib.import_module(BENCHMARK_MODULES[name])
    if name not in BENCHMARKS:
        # Unknown: the error lists every benchmark we know of, registered or not yet imported.
        from tunescope.errors import UnknownNameError

        raise UnknownNameError("benchmark", name, BENCHMARK_MODULES)
    fn = BENCHMARKS.get(name)
    if name not in BENCHMARK_OPTIONS:  # registered from outside without an option table: passed through as given
        return fn

    @functools.wraps(fn)
    def checked(options: Mapping[str, Any]) -> dict:
        return fn(check_benchmark_options(name, options))

    return checked
