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

from tunescope import __version__
from tunescope.errors import UserError

# One line per subcommand module; order = order in `tunescope --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "tunescope.cli.commands.run",
    "tunescope.cli.commands.finetune",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunescope",
        description="Diagnose-first fine-tuning of transformer models.",
    )
    parser.add_argument("--version", action="version", version=f"tunescope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with `argv` (default sys.argv[1:]); returns the exit code instead of exiting."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error
        return int(e.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UserError as e:
        print(f"tunescope: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunescope: interrupted; the last checkpoint is kept (use --resume to continue)", file=sys.stderr)
        return 130


def entry_point() -> None:
    sys.exit(main())
