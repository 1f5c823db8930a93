"""Scale-out through the standard launcher: `torchrun --nproc_per_node 2 -m tunescope finetune` on the CPU.

Two processes must form one gloo process group and split the data (half the optimizer steps of one process),
and only process 0 writes the run directory. SIFT is the strategy with its own distributed code path (the
selection gradient is all-reduced before the top-k), so it is the one launched here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(300)
def test_torchrun_two_processes_split_the_data(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tunescope", "finetune", "--strategy", "sift", "--sift-rate", "0.2",
           "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--epochs", "1", "--batch-size", "8",
           "--out", str(out), "feature_change=false"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1  # only process 0 reports

    results = json.loads((out / "results.json").read_text())
    train = results["data_sizes"]["train"]
    steps = -(-train // (8 * 2))  # each step consumes one batch of 8 per process
    state = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    assert (out / "checkpoints" / "final").is_dir() and (out / "report.html").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no stray run folder from the second process


def test_launch_without_out_is_a_user_error(capsys, monkeypatch):
    from tunescope.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["finetune", "--epochs", "1"]) == 2
    assert "--out" in capsys.readouterr().err
