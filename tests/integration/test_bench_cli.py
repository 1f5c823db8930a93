"""`tunescope bench NAME --json` prints one JSON object with the keys INTERFACE.md promises (tiny settings).

The diagnostics benchmark is checked in test_diagnose_cli.py; these are the other three.
"""

from __future__ import annotations

import json

import pytest

from tunescope.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _bench(capsys, *argv) -> dict:
    assert main(["bench", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _positive(result: dict, *keys: str) -> None:
    for key in keys:
        assert result[key] > 0 and result[key] == result[key], (key, result[key])  # finite, not NaN


def test_bench_sift_keys(tiny_model_dir, capsys):
    r = _bench(capsys, "sift", f"model={tiny_model_dir['bert']}", "batch_size=4", "seq_len=8", "steps=1",
               "warmup=0", "memory=false", "rate=0.05")
    _positive(r, "optimizer_state_ratio", "step_time_ratio")
    assert r["optimizer_state_ratio"] == pytest.approx(r["optimizer_state_bytes_sift"] / r["optimizer_state_bytes_full"])
    assert r["trainable_sift"] < r["trainable_full"]


def test_bench_landscape_keys(capsys):
    r = _bench(capsys, "landscape", "directions=2")
    _positive(r, "evals_per_direction", "time_ratio_vs_grid")
    assert r["evals_per_direction"] < r["grid_evals_per_direction"] == 41


def test_bench_jump_keys(tiny_model_dir, toy_csv, capsys):
    r = _bench(capsys, "jump", f"model={tiny_model_dir['llama']}", f"data={toy_csv}", "batch_size=2", "seq_len=16",
               "batches=2", "repeats=1")
    _positive(r, "throughput_ratio", "plain_tokens_per_s", "jump_tokens_per_s")
    assert r["throughput_ratio"] == pytest.approx(r["jump_tokens_per_s"] / r["plain_tokens_per_s"])
