"""Options shared by the commands: --config, --out, --seed, --limit, --max-length, key=value overrides."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from tunescope.config import build_config, field_docs, load_yaml, parse_overrides

C = TypeVar("C")


def add_common_options(parser: argparse.ArgumentParser, *, overrides: bool = True) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE.yaml", help="YAML file of config values (key: value)")
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/<command>-<timestamp>)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    g.add_argument("--limit", type=int, default=None, help="cap examples per split")
    g.add_argument("--max-length", type=int, default=None, dest="max_length", help="max tokens per example")
    if overrides:
        g.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. epochs=1")


def add_config_flags(parser: argparse.ArgumentParser, cls: type, fields: dict[str, str]) -> None:
    """Add `--flag` options for dataclass fields, with the field's attribute docstring as help.

    `fields` maps field name -> flag name (e.g. {"lora_rank": "--rank"}). Defaults are None so that
    only flags the user actually gave override the YAML file.
    """
    docs = field_docs(cls)
    for name, flag in fields.items():
        parser.add_argument(flag, dest=name, default=None, metavar=name.split("_")[-1].upper(),
                            help=docs.get(name, ""))


def resolve_config(cls: type[C], args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> C:
    """Build `cls` from: defaults < --config YAML < explicit flags < key=value overrides."""
    names = {f.name for f in dataclasses.fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    yaml_values = load_yaml(args.config) if getattr(args, "config", None) else {}
    overrides = parse_overrides(getattr(args, "overrides", None) or [])
    return build_config(cls, defaults or {}, yaml_values, flags, overrides)


def make_run_dir(args: argparse.Namespace, name: str) -> Path:
    """--out, or runs/<name>-<YYYYmmdd-HHMMSS> (a suffix is added if that exists)."""
    if getattr(args, "out", None):
        return Path(args.out)
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
