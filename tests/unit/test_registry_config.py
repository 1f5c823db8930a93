"""Registry, config coercion/validation, atomic IO."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tunescope.config import build_config, coerce, field_docs, parse_overrides
from tunescope.errors import UnknownNameError, UserError
from tunescope.io import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from tunescope.registry import Registry


def test_registry_refuses_duplicates_and_suggests():
    reg: Registry[int] = Registry("strategy")
    reg.register("lora", 1)
    with pytest.raises(ValueError):
        reg.register("lora", 2)
    with pytest.raises(UnknownNameError, match="Did you mean 'lora'"):
        reg.get("lorra")
    assert reg.names() == ["lora"] and "lora" in reg


@dataclass
class _Cfg:
    epochs: float = 1.0
    """How long."""
    layers: list[int] | None = None
    """Which blocks."""
    name: str = "x"


def test_build_config_layers_and_coercion():
    cfg = build_config(_Cfg, {"epochs": 2}, {"layers": "3,4"}, parse_overrides(["epochs=0.5"]))
    assert cfg.epochs == 0.5 and cfg.layers == [3, 4]
    assert field_docs(_Cfg) == {"epochs": "How long.", "layers": "Which blocks."}


def test_build_config_unknown_key_suggests():
    with pytest.raises(UserError, match="unknown config key 'epoch'.*Did you mean 'epochs'"):
        build_config(_Cfg, {"epoch": 1})


@pytest.mark.parametrize("value,tp,bad", [("abc", float, "abc"), ("1.5", int, "1.5"), ("maybe", bool, "maybe"),
                                          ("x,y", list[int], "x")])
def test_coerce_rejects_with_named_value(value, tp, bad):
    with pytest.raises(UserError, match=f"bad value '{bad}' for k: expected"):
        coerce(value, tp, "k")


def test_coerce_optional_none():
    assert coerce("none", int | None, "k") is None and coerce("3", int | None, "k") == 3


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"a": float("nan"), "b": 1})
    assert json.loads(target.read_text()) == {"a": None, "b": 1}

    def boom(p):
        p.write_text("half")
        raise RuntimeError("interrupted")

    from tunescope.io import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"a": None, "b": 1}  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left
    atomic_write_text(tmp_path / "x.txt", "ok")


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path):
    import os

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert os.stat(tmp_path / "atomic.txt").st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_jsonl_skips_cut_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1})
    with open(path, "a") as f:
        f.write('{"step": 2, "lo')  # a crash mid-write
    assert read_jsonl(path) == [{"step": 1}]
