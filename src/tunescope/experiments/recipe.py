"""The one wrapper every recipe runs in: set-up and tear-down of a run directory.

`run_recipe(command, config, out, body)`:
1. reuse: when OUT already holds a finished run (results.json) and `reuse=True`, its results are returned if its
   saved config equals this config, and refused (UserError, exit 2) otherwise - a stale sub-run is never mixed
   into a new comparison;
2. locks OUT for the whole run (RUN/.lock: a second process on it exits 2 naming this one's pid);
3. refuses a non-empty OUT unless `resume` (continue the run in it) or `overwrite` (clear it first);
4. makes the folder, drops an earlier attempt's results.json / report.html and writes config.yaml (only once the
   config has been built and validated);
5. runs `body(run_dir) -> results`, timing it;
6. adds `command` and `wall_seconds`, writes results.json atomically and builds report.html.
Under torchrun / accelerate launch every process runs the body and only process 0 locks and writes files.

Orchestrating recipes (compare, transfer, basins) run sub-runs inside their own folder through `run_sub_run`:
a finished sub-run made with the same config is reused, an interrupted one is resumed, a new one is started.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunescope.errors import UserError
from tunescope.experiments.rundir import RunDir, config_difference, run_lock
from tunescope.io import is_main_process
from tunescope.provenance import provenance

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


def run_sub_run(run_dir: RunDir, config: Any, run: Callable[..., dict]) -> dict:
    """The results of a sub-run of an orchestrating recipe, in `run_dir`, made with `config`.

    Finished with this config: its results are reused. Interrupted (config.yaml saved, no results): continued with
    `run(resume=True, overwrite=False)` - a finished sub-run or an interrupted one made with another config is
    refused (UserError, naming the key that differs), never mixed in. Otherwise: `run(resume=False,
    overwrite=True)`, a fresh start (the folder holds nothing of a run: no config.yaml).
    """
    done = reusable_results(run_dir, config)
    if done is not None:
        return done
    saved = run_dir.saved_config()
    if saved is None:
        return run(resume=False, overwrite=True)
    diff = config_difference(saved, config)
    if diff is not None:
        raise UserError(f"bad run directory {str(run_dir.path)!r}: it holds an interrupted run with another config "
                        f"({diff}); use another --out or remove that folder")
    log.info("continuing the interrupted run in %s", run_dir.path)
    return run(resume=True, overwrite=False)


_last: dict = {}


def last_results() -> dict | None:
    """The results of the outermost recipe this process finished last (what `tunescope CMD --json` prints)."""
    return _last.get("results")


def run_recipe(command: str, config: Any, out: str | Path | RunDir, body: Callable[[RunDir], dict], *,
               reuse: bool = False, write_report: bool = True, save_config: bool = True, resume: bool = False,
               overwrite: bool = False) -> dict:
    """Run `body` inside the run directory `out` (see the module docstring); returns the results dict.

    `resume`: OUT may hold the run being continued; `overwrite`: a non-empty OUT is cleared first.
    """
    run_dir = out if isinstance(out, RunDir) else RunDir(Path(out))
    if reuse:
        done = reusable_results(run_dir, config)
        if done is not None:
            return done
    with run_lock(run_dir):
        return _run_locked(command, config, run_dir, body, write_report=write_report, save_config=save_config,
                           resume=resume, overwrite=overwrite)


def _run_locked(command: str, config: Any, run_dir: RunDir, body: Callable[[RunDir], dict], *, write_report: bool,
                save_config: bool, resume: bool, overwrite: bool) -> dict:
    """Steps 3-6 of run_recipe, with the run directory locked."""
    main = is_main_process()
    if main:
        run_dir.prepare(resume=resume, overwrite=overwrite)
    run_dir.path.mkdir(parents=True, exist_ok=True)
    if main and save_config:
        run_dir.discard_results()  # an earlier attempt's results must never sit beside this config
        run_dir.write_config(config)
    start, origin = time.perf_counter(), provenance()
    results = body(run_dir)
    results.setdefault("command", command)
    for key, value in origin.items():  # schema_version, versions, command_line, started_at
        results.setdefault(key, value)
    # A resumed run reports its whole time: the body may say how long the run had taken before the resume.
    results["wall_seconds"] = round(time.perf_counter() - start + results.pop("wall_seconds_before_resume", 0.0), 2)
    _last["results"] = results
    if main:
        run_dir.write_results(results)
        if write_report:
            from tunescope.report.html import build_report

            build_report(run_dir.path)
    return results
