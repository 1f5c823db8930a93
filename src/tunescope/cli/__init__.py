"""The `tunescope` command: `main(argv) -> int`, so tests call it in-process.

Each subcommand lives in `cli/commands/<name>.py` and defines `register(subparsers)`, which adds its
parser and sets `handler=fn(args) -> int`. Exit codes: 0 success, 2 bad input (one line on stderr,
no traceback), 1 unexpected internal error.
"""

from __future__ import annotations

import argparse
import importlib
import json
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
    "tunescope.cli.commands.plan",
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
    "tunescope.cli.commands.evaluate",
    "tunescope.cli.commands.export",
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
    _add_output_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    for command in _subcommand_parsers(parser):
        _add_output_options(command, top=False)
    return parser


def _subcommand_parsers(parser: argparse.ArgumentParser):
    """Every subcommand's parser, nested ones included (`assets list`), so that -v / -q / --json work after the
    last subcommand too. argparse has no public accessor for a parser's subparsers; `_actions` is stable."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                yield command
                yield from _subcommand_parsers(command)


def _add_output_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-v / -q / --json, accepted before and after the subcommand (`tunescope finetune ... -v`).

    On a subcommand their default is SUPPRESS, so a flag given before the subcommand is not reset by the
    subparser's default; `--json` is left alone where a command already defines it (bench).
    """
    default = {} if top else {"default": argparse.SUPPRESS}
    g = parser.add_argument_group("output") if not top else parser
    g.add_argument("-v", "--verbose", action="store_true", help="show tunescope's debug messages", **default)
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **default)
    if "--json" not in parser._option_string_actions:
        g.add_argument("--json", action="store_true", help="print the results as one JSON object, the last line of "
                       "stdout", **default)


def _set_up_output(args: argparse.Namespace) -> None:
    """Logs go to stderr; -v turns on tunescope's own debug lines only (not matplotlib's or urllib's); -q silences
    every progress bar (ours, the Trainer's, datasets' and the hub's)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tunescope").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if args.quiet:
        for var in ("TUNESCOPE_QUIET", "TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                    "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ[var] = "1"
        # The libraries read those variables when first imported; in a process that imported them already
        # (a notebook, a test) their switches are flipped directly. Only then: importing them here would cost
        # seconds for commands that never load them (bench, report, assets).
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
        if "huggingface_hub" in sys.modules:
            importlib.import_module("huggingface_hub.utils").disable_progress_bars()
        if "transformers" in sys.modules:
            importlib.import_module("transformers.utils.logging").disable_progress_bar()


def _print_json(args: argparse.Namespace) -> None:
    """--json: the results the command produced, as one line (the recipe's results, or the handler's payload)."""
    from tunescope.experiments.recipe import last_results
    from tunescope.io import to_jsonable

    payload = getattr(args, "json_payload", None) or last_results()
    if payload is not None:
        print(json.dumps(to_jsonable(payload), sort_keys=False))


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
    _set_up_output(args)
    if not getattr(args, "handler", None):
        parser.print_help()
        commands = ", ".join(m.rsplit(".", 1)[-1] for m in COMMAND_MODULES)  # each module is named as its command
        print(f"tunescope: error: no COMMAND given; expected one of: {commands}", file=sys.stderr)
        return 2
    try:
        _check_out(args)
        code = int(args.handler(args) or 0)
        if code == 0 and args.json and args.command != "bench":  # bench prints its own JSON
            _print_json(args)
        return code
    except UserError as e:
        print(f"tunescope: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunescope: interrupted; the last checkpoint is kept (use --resume to continue)", file=sys.stderr)
        return 130


def entry_point() -> None:
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows up here, inside the try
    except BrokenPipeError:
        # The reader of stdout went away (`tunescope assets list | head -1`): no traceback. Python's documented
        # recipe: point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
