"""RunDir: every path of a run directory, named once, and the run's config / results files.

Layout (the contract users and checks rely on):
    config.yaml     the resolved config          results.json   the final results
    report.html     the self-contained report    metrics.jsonl  one JSON object per logged step
    logits.npz      validation / test logits     checkpoints/   Trainer checkpoints; checkpoints/final the model
    .lock           held (fcntl.flock) by the process running in the folder; its pid inside

Rules that keep a run directory from lying: a new run starts in an empty folder (a non-empty one is refused unless
it is resumed or overwritten, `RunDir.prepare`); one process at a time runs in a folder (`run_lock`); results.json
and report.html of an earlier attempt never stay beside a freshly written config.yaml (`discard_results`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunescope.config import load_yaml, save_config
from tunescope.errors import UserError
from tunescope.io import atomic_write_json, atomic_write_text, is_main_process

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs go unlocked
    fcntl = None

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
RUN_MARKERS = ("config.yaml", "results.json")
"""Files that show a folder is a tunescope run (every recipe writes config.yaml first), so --overwrite may clear it."""


@dataclass(frozen=True)
class RunDir:
    """A run directory (it need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def logits_file(self) -> Path:
        return self.path / "logits.npz"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        """The trained model: safetensors folder, PEFT adapter folder, or a strategy's own format (SIFT delta)."""
        return self.checkpoints / "final"

    def sub(self, name: str) -> RunDir:
        """A sub-run of an orchestrating recipe (compare, transfer, basins)."""
        return RunDir(self.path / name)

    def has_results(self) -> bool:
        return self.results_file.is_file()

    def read_results(self) -> dict:
        try:
            return json.loads(self.results_file.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"bad file {str(self.results_file)!r}: not readable JSON ({e}); rerun with --overwrite") \
                from None

    def write_results(self, results: dict) -> None:
        atomic_write_json(self.results_file, results)

    def write_config(self, config: Any) -> None:
        save_config(config, self.config_file)

    def saved_config(self) -> dict | None:
        return load_yaml(self.config_file) if self.config_file.is_file() else None

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_NAME

    def contents(self) -> list[str]:
        """The names in the folder, the lock file aside (a stale lock file does not make a folder non-empty)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.name != LOCK_NAME)

    def is_empty(self) -> bool:
        return not self.contents()

    def clear(self) -> None:
        """Delete everything in the folder except the lock file (which the caller holds)."""
        for name in self.contents():
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()

    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Make sure a run may start here: an empty (or absent) folder; a non-empty one only when it is resumed,
        or cleared first when `overwrite`. UserError (exit 2) otherwise, naming the folder and both ways out."""
        if resume and overwrite:
            raise UserError("bad options --resume and --overwrite together: --resume continues the run in --out, "
                            "--overwrite deletes it; pass one of them")
        if self.is_empty():
            return
        if resume:
            if not any((self.path / name).exists() for name in RUN_MARKERS):
                raise UserError(f"nothing to resume in {str(self.path)!r}: the folder holds no tunescope run (no "
                                f"{' or '.join(RUN_MARKERS)})")
            return
        if overwrite:
            if not any((self.path / name).exists() for name in RUN_MARKERS):
                # --overwrite deletes everything in the folder: never in one no tunescope run wrote (`--out .`).
                raise UserError(f"bad value {str(self.path)!r} for --out with --overwrite: the folder holds no "
                                f"tunescope run (no {' or '.join(RUN_MARKERS)}); delete it yourself or use another "
                                "--out")
            log.info("--overwrite: clearing %s", self.path)
            self.clear()
            return
        names = self.contents()
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(f"bad value {str(self.path)!r} for --out: the folder is not empty ({shown}); pass --resume "
                        "to continue the run in it or --overwrite to delete its contents first")

    def discard_results(self) -> None:
        """Remove the results and report of an earlier attempt (they must never describe a new config)."""
        self.results_file.unlink(missing_ok=True)
        self.report_file.unlink(missing_ok=True)

    def trim_metrics(self, last_step: int) -> None:
        """Drop metrics.jsonl records logged after `last_step`: a run resumed from that step logs them again."""
        if not self.metrics_file.is_file():
            return
        lines = self.metrics_file.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if _step_of(line) <= last_step]
        if len(kept) != len(lines):
            atomic_write_text(self.metrics_file, "".join(kept))


def _step_of(line: str) -> float:
    """The `step` of one metrics.jsonl line; a line that does not parse (cut by a kill) counts as after any step."""
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError, TypeError):
        return float("inf")


def _lock_holder(fd: int) -> str:
    """The pid written in a lock file, as text ('unknown' while the holder has not written it yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


def _acquire(lock_file: Path, run_path: Path) -> int:
    """Open and flock `lock_file` without waiting; returns its fd. UserError naming the holder's pid if held.

    A releasing holder deletes the file; a lock taken on a file that was deleted meanwhile guards nothing, so
    the inode is checked after locking and the attempt repeated on the new file.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise UserError(f"bad value {str(run_path)!r} for --out: another process (pid {holder}) is running in "
                            "this run directory; wait for it to finish or use another --out") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


# Locks this process holds: resolved folder -> [fd, depth]. Re-entrant, so a recipe nested in another on the same
# folder (or make_run_dir's check before the recipe) does not lock itself out.
_HELD: dict[Path, list[int]] = {}


@contextlib.contextmanager
def run_lock(run_dir: RunDir) -> Iterator[None]:
    """Hold RUN/.lock (fcntl.flock) for the block: a second process on the same folder gets UserError naming this
    process's pid. The kernel drops the lock when a process dies, so a stale lock file never blocks. Under
    torchrun / accelerate launch only process 0 locks (the other processes run in the same folder on purpose)."""
    if fcntl is None or not is_main_process():
        yield
        return
    key = run_dir.path.resolve()
    held = _HELD.get(key)
    if held is not None:
        held[1] += 1
    else:
        _HELD[key] = [_acquire(run_dir.lock_file, run_dir.path), 1]
    try:
        yield
    finally:
        entry = _HELD[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(run_dir.lock_file)  # before unlocking: a waiter then re-checks the inode, see _acquire
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])


def claim(run_dir: RunDir, *, resume: bool = False, overwrite: bool = False) -> None:
    """Check (and with `overwrite`, clear) a run directory before a command starts; a no-op outside process 0
    and for a folder that does not exist yet (nothing to refuse or clear; the recipe makes it, once it starts)."""
    if not is_main_process() or not run_dir.path.exists():
        return
    with run_lock(run_dir):
        run_dir.prepare(resume=resume, overwrite=overwrite)


def config_as_saved(config: Any) -> dict:
    """The config as config.yaml holds it (a YAML round trip, so tuples and lists compare equal)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))


def config_difference(saved: dict, config: Any) -> str | None:
    """None when `saved` (a config.yaml) describes `config`; else 'key: saved -> new' for the first difference."""
    current = config_as_saved(config)
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            return f"{key}: {saved.get(key)!r} -> {current.get(key)!r}"
    return None
