"""`tunescope bench cli`: seconds of `tunescope --help` and of every `tunescope CMD --help`, each in a fresh process.

Each command line runs as `python -m tunescope [CMD] --help` in a new interpreter (what a user waits for: start-up,
imports, building the parser, printing the help), `repeats` times; the command lines are interleaved inside every
repeat so machine load hits them alike, and each one's median wall time is reported. The commands are the ones the
parser has (cli.COMMAND_MODULES), so a new command is measured without touching this file. Reported:
- help_seconds: {command line: median seconds};
- help_seconds_max: the slowest of them; goal < 1.5 s;
- python_startup_seconds: median of `python -c pass`, the floor under every figure, measured in the same rounds.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from tunescope.bench import BENCHMARKS


def help_command_lines() -> list[list[str]]:
    """`[]` (top level) and `[CMD]` for every subcommand, in `tunescope --help` order (each command module is
    named as its command)."""
    from tunescope.cli import COMMAND_MODULES

    return [[], *([module.rsplit(".", 1)[-1]] for module in COMMAND_MODULES)]


def _seconds(argv: list[str]) -> float:
    """Wall seconds of one `python argv` run in a fresh process (its output is discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


@BENCHMARKS.register("cli")
def bench_cli(options: dict) -> dict:
    repeats = int(options.get("repeats", 5))
    lines = {" ".join(["tunescope", *cmd, "--help"]): ["-m", "tunescope", *cmd, "--help"]
             for cmd in help_command_lines()}
    times: dict[str, list[float]] = {label: [] for label in lines}
    startup: list[float] = []
    for _ in range(repeats):
        startup.append(_seconds(["-c", "pass"]))
        for label, argv in lines.items():
            times[label].append(_seconds(argv))
    medians = {label: round(statistics.median(t), 3) for label, t in times.items()}
    return {"help_seconds_max": max(medians.values()), "help_seconds": medians,
            "python_startup_seconds": round(statistics.median(startup), 3), "repeats": repeats}
