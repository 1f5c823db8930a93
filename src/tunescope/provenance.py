"""Where a results.json came from: schema version, package versions, the command line, the start time.

The CLI records its argv here (`set_command_line`) before it dispatches, so a recipe run from `main([...])` in a
test, from the `tunescope` script or from `python -m tunescope` records the same thing; the Python API records
`python: <function>` instead. Importing this module imports nothing heavy (versions are read from the installed
distributions' metadata).
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata

# Bump when a key of results.json changes meaning or moves (adding keys does not need a bump).
SCHEMA_VERSION = 1
PACKAGES = ("tunescope", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors")

_command_line: list[str] | None = None


def set_command_line(argv: list[str]) -> None:
    """Remember the arguments of the running `tunescope` command (called by cli.main)."""
    global _command_line
    _command_line = ["tunescope", *argv]


def command_line() -> str:
    """The command that started this run, shell-quoted; for Python API calls, the interpreter's argv."""
    args = _command_line if _command_line is not None else [sys.executable, *sys.argv]
    return shlex.join(args)


def versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour the numbers depend on (absent ones are left out)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(started_at: datetime | None = None) -> dict:
    """The provenance keys of results.json: schema_version, versions, command_line, started_at (UTC, ISO 8601)."""
    start = started_at or datetime.now(timezone.utc)
    return {"schema_version": SCHEMA_VERSION, "versions": versions(), "command_line": command_line(),
            "started_at": start.isoformat(timespec="seconds")}
