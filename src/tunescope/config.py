"""Dataclass configs: YAML files, `key=value` overrides, attribute docstrings as help, validation.

Precedence, lowest first: dataclass defaults < `--config FILE.yaml` < explicit CLI flags <
`key=value` overrides. Unknown keys and values of the wrong type raise UserError (exit 2) naming
the key, the value and what is accepted.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tunescope.errors import UserError, did_you_mean
from tunescope.io import atomic_write_text

C = TypeVar("C")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (the string literal right after a field) of a dataclass and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # the class body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


class Options:
    """Base of every config dataclass and option group.

    Configs are composed from option groups declared once (tasks.options.TaskOptions, training.options.
    TrainingOptions, strategies.lora.LoraOptions, ...) by dataclass inheritance, so a field shared by several
    commands has one declaration, one docstring and one validation. Each group validates its own fields in a
    `validate(self)` method; `__post_init__` runs every group's `validate` (base groups first), so no group has
    to remember to call `super()`.
    """

    def __post_init__(self) -> None:
        for klass in reversed(type(self).__mro__):
            validate = klass.__dict__.get("validate")
            if validate is not None:
                validate(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a comma-separated list of {_describe(typing.get_args(tp)[0])}"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` (from YAML or a `key=value` string) to annotation `tp`, or raise UserError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except UserError:
                continue
        raise UserError(f"bad value {value!r} for {key}: expected {_describe(tp)}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise UserError(f"bad value {value!r} for {key}: expected one of {', '.join(map(str, choices))}"
                        + did_you_mean(str(value), map(str, choices)))
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        return [coerce(v, inner, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise UserError(f"bad value {value!r} for {key}: expected true or false")
    if tp in (int, float):
        if isinstance(value, bool):
            raise UserError(f"bad value {value!r} for {key}: expected {_describe(tp)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"bad value {value!r} for {key}: expected {_describe(tp)}") from None
        if not math.isfinite(number):  # inf / nan pass float() but no setting means them
            raise UserError(f"bad value {value!r} for {key}: expected a finite number")
        if tp is int:
            if not number.is_integer():
                raise UserError(f"bad value {value!r} for {key}: expected an integer")
            return int(number)
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"bad value {value!r} for {key}: expected a string")
        return str(value)
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """`["epochs=2", "lora_rank=16"]` -> {"epochs": "2", "lora_rank": "16"}; dashes in keys become underscores."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"bad override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"config file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {str(path)!r} must be a mapping of key: value, got {type(data).__name__}")
    return data


def build_config(cls: type[C], *layers: Mapping[str, Any] | None) -> C:
    """Instantiate dataclass `cls` from mappings applied in order (later wins), coercing and validating."""
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            key = key.replace("-", "_")
            if key not in hints or key not in names:
                raise UserError(f"unknown config key {key!r}.{did_you_mean(key, names)} Accepted keys: "
                                f"{', '.join(names)}")
            values[key] = coerce(value, hints[key], key)
    try:
        return cls(**values)
    except TypeError as e:  # a required field missing
        raise UserError(f"incomplete configuration: {e}") from None


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def check(condition: bool, key: str, value: Any, accepted: str) -> None:
    """Validation helper for __post_init__: raise UserError('bad value V for K: expected ...')."""
    if not condition:
        raise UserError(f"bad value {value!r} for {key}: expected {accepted}")
