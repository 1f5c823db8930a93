"""The one wrapper every recipe runs in: set-up and tear-down of a run directory.

`run_recipe(command, config, out, body)`:
1. reuse: when OUT already holds a finished run (results.json) and `reuse=True`, its results are returned if its
   saved config equals this config, and refused (UserError, exit 2) otherwise - a stale sub-run is never mixed
   into a new comparison;
2. makes the folder and writes config.yaml (only once the config has been built and validated);
3. runs `body(run_dir) -> results`, timing it;
4. adds `command` and `wall_seconds`, writes results.json atomically and builds report.html.
Under torchrun / accelerate launch every process runs the body and only process 0 writes files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunescope.errors import UserError
from tunescope.experiments.rundir import RunDir, config_difference
from tunescope.io import is_main_process

log = logging.getLogger(__name__)


def reusable_results(run_dir: RunDir, config: Any) -> dict | None:
    """The results of a finished run in `run_dir` made with `config`; None when it is not finished.

    UserError when it is finished with another config (saying which key differs).
    """
    if not run_dir.has_results():
        return None
    saved = run_dir.saved_config()
    if saved is None:
        raise UserError(f"bad run directory {str(run_dir.path)!r}: results.json without config.yaml; "
                        "remove it or use another --out")
    diff = config_difference(saved, config)
    if diff is not None:
        raise UserError(f"bad run directory {str(run_dir.path)!r}: it holds a finished run with another config "
                        f"({diff}); use another --out or remove that folder")
    log.info("reusing the finished run in %s", run_dir.path)
    return run_dir.read_results()


def run_recipe(command: str, config: Any, out: str | Path | RunDir, body: Callable[[RunDir], dict], *,
               reuse: bool = False, write_report: bool = True, save_config: bool = True) -> dict:
    """Run `body` inside the run directory `out` (see the module docstring); returns the results dict."""
    run_dir = out if isinstance(out, RunDir) else RunDir(Path(out))
    if reuse:
        done = reusable_results(run_dir, config)
        if done is not None:
            return done
    main = is_main_process()
    run_dir.path.mkdir(parents=True, exist_ok=True)
    if main and save_config:
        run_dir.write_config(config)
    start = time.perf_counter()
    results = body(run_dir)
    results.setdefault("command", command)
    # A resumed run reports its whole time: the body may say how long the run had taken before the resume.
    results["wall_seconds"] = round(time.perf_counter() - start + results.pop("wall_seconds_before_resume", 0.0), 2)
    if main:
        run_dir.write_results(results)
        if write_report:
            from tunescope.report.html import build_report

            build_report(run_dir.path)
    return results
