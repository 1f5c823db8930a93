"""Options shared by the commands: --config, --out, --overwrite, --seed, --limit, --max-length, key=value overrides."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from tunescope.config import build_config, field_docs, load_yaml, parse_overrides

C = TypeVar("C")


# Short extra names for a few long fields (the generated --field-name always works too).
ALIASES: dict[str, tuple[str, ...]] = {
    "learning_rate": ("--lr",),
    "lora_rank": ("--rank",),
    "inflection_width": ("--width",),
}


def add_common_options(parser: argparse.ArgumentParser, *, overrides: bool = True) -> None:
    """--config FILE.yaml, --out DIR, --overwrite and trailing key=value overrides (every config-driven command
    has them)."""
    g = parser.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE.yaml",
                   help="YAML file of config values (key: value) (default: none, the built-in defaults)")
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/<command>-<timestamp>); a non-empty "
                                                "one is refused unless resumed or --overwrite is given")
    g.add_argument("--overwrite", action="store_true",
                   help="delete the contents of a non-empty --out run directory before starting")
    if overrides:
        g.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=1")


def _metavar(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _metavar(args[0]) if len(args) == 1 else "VALUE"
    if origin is list:
        return f"{_metavar(typing.get_args(tp)[0])},..."
    if origin is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    return {int: "N", float: "X", str: "TEXT"}.get(tp, "VALUE")


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return "none" if value is None else str(value)


def default_text(cls: type, name: str) -> str:
    """The default of field `name` of dataclass `cls`, as --help shows it (for a flag written by hand)."""
    return _default_text(next(f for f in dataclasses.fields(cls) if f.name == name))


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, skip: tuple[str, ...] = (),
                     title: str | None = None) -> None:
    """One `--field-name` option per field of dataclass `cls` (plus ALIASES), help = the field's docstring and
    its default. Defaults are None so only the flags the user gave override --config; values are coerced and
    validated by config.build_config. A command therefore has exactly the flags its config uses.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    g = parser.add_argument_group(title or f"{cls.__name__} settings (also as key=value or in --config)")
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        names = ["--" + f.name.replace("_", "-"), *ALIASES.get(f.name, ())]
        help_text = f"{docs.get(f.name, '')} (default: {_default_text(f)})".replace("%", "%%")
        if hints[f.name] is bool:
            g.add_argument(*names, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            g.add_argument(*names, dest=f.name, default=None, metavar=_metavar(hints[f.name]), help=help_text)


def resolve_config(cls: type[C], args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> C:
    """Build `cls` from: defaults < --config YAML < explicit flags < key=value overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    yaml_values = load_yaml(args.config) if getattr(args, "config", None) else {}
    overrides = parse_overrides(getattr(args, "overrides", None) or [])
    return build_config(cls, defaults or {}, yaml_values, flags, overrides)


def make_run_dir(args: argparse.Namespace, name: str) -> Path:
    """--out, or runs/<name>-<YYYYmmdd-HHMMSS> (a suffix is added if that exists).

    A non-empty --out is refused here, before any work (UserError, exit 2), unless the command resumes it
    (`--resume`) or `--overwrite` is given, which clears it now; the recipe checks again under its lock.
    """
    if getattr(args, "out", None):
        from tunescope.experiments.rundir import RunDir, claim

        path = Path(args.out)
        claim(RunDir(path), resume=bool(getattr(args, "resume", False)),
              overwrite=bool(getattr(args, "overwrite", False)))
        return path
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from tunescope.errors import UserError

        # Each process would stamp its own clock and pick its own folder.
        raise UserError("bad value None for --out: under torchrun / accelerate launch every process must write to "
                        "the same run directory; pass --out DIR")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{stamp}"
    i = 1
    while path.exists():
        path = Path("runs") / f"{name}-{stamp}-{i}"
        i += 1
    return path
