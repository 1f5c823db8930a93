"""The `tunescope` command: `main(argv) -> int`, so tests call it in-process.

Each subcommand lives in `cli/commands/<name>.py` and defines `register(subparsers)`, which adds its
parser and sets `handler=fn(args) -> int`. Exit codes: 0 success, 2 bad input (one line on stderr,
no traceback), 1 unexpected internal error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tunescope import __version__
from tunescope.errors import UserError
from tunescope.provenance import set_command_line

# One line per subcommand module; order = order in `tunescope --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "tunescope.cli.commands.run",
    "tunescope.cli.commands.finetune",
    "tunescope.cli.commands.sft",
    "tunescope.cli.commands.diagnose",
    "tunescope.cli.commands.transfer",
    "tunescope.cli.commands.assets",
    "tunescope.cli.commands.report",
    "tunescope.cli.commands.bench",
    "tunescope.cli.commands.compare",
    "tunescope.cli.commands.ntk",
    "tunescope.cli.commands.calibrate",
    "tunescope.cli.commands.landscape",
    "tunescope.cli.commands.sparsity",
    "tunescope.cli.commands.jump",
    "tunescope.cli.commands.pretrain",
)


class _Parser(argparse.ArgumentParser):
    """No abbreviated long options (subparsers inherit the class): otherwise `transfer --seed 3` would silently mean
    `--seeds 3`, and a flag a command does not have would not be an error."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Bad command line: ONE line on stderr and exit 2, like every other bad input. argparse would print its
        usage block first; the message already names the bad value and what is accepted, and --help has the rest.
        `--help` itself is untouched (it never calls error)."""
        self.exit(2, f"tunescope: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tunescope",
        description="Diagnose-first fine-tuning of transformer models.",
    )
    parser.add_argument("--version", action="version", version=f"tunescope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _check_out(args: argparse.Namespace) -> None:
    """--out must name a folder this process can write: an existing file or a read-only place is refused now,
    before any data or model is loaded, instead of failing with a traceback at the first write."""
    out = getattr(args, "out", None)
    if not out:
        return
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"bad value {out!r} for --out: it is an existing file; expected a folder (a new one, or a "
                        "run directory)")
    existing = next(p for p in (path, *path.parents) if p.exists())  # '.' or '/' at the latest
    if not existing.is_dir():
        raise UserError(f"bad value {out!r} for --out: {str(existing)!r} is a file, not a folder; expected a folder "
                        "path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"bad value {out!r} for --out: the folder {str(existing)!r} is not writable; expected a "
                        "folder you can write in")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default sys.argv[1:]); returns the exit code instead of exiting."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    set_command_line(argv)  # results.json records the command that made it
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error
        return int(e.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        commands = ", ".join(m.rsplit(".", 1)[-1] for m in COMMAND_MODULES)  # each module is named as its command
        print(f"tunescope: error: no COMMAND given; expected one of: {commands}", file=sys.stderr)
        return 2
    try:
        _check_out(args)
        return int(args.handler(args) or 0)
    except UserError as e:
        print(f"tunescope: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunescope: interrupted; the last checkpoint is kept (use --resume to continue)", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())
