"""Scale-out with accelerate's launcher on the CPU, the way README documents it.

    accelerate launch --multi_gpu --num_processes 2 -m tunescope finetune ...   # 2 CPU processes, DDP over gloo

`--multi_gpu` is accelerate's multi-process launcher (torchrun underneath); on a machine without an accelerator the
Trainer runs with use_cpu and both processes join one gloo group: they split the data (half the optimizer steps of
one process at the same per-process batch), only process 0 writes the run folder, and the losses are those of one
process over the same global batch of 16. `accelerate launch --cpu --num_processes 2` starts ONE process
(training/launch.py says why); tunescope refuses it with one line instead of training alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tunescope.cli import main

LOSS_RTOL = 1e-5  # same examples, same global batch: only the order of float sums differs
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no"]
LAUNCH_ERROR = "tunescope: error: bad launch 'accelerate launch --cpu --num_processes N': accelerate starts one process"


def _argv(model_dir, csv, out, batch_size: int) -> list[str]:
    return ["finetune", "--model", str(model_dir), "--data", str(csv), "--strategy", "full", "--epochs", "1",
            "--limit", "64", "--batch-size", str(batch_size), "--out", str(out), "--no-feature-change",
            "--logging-steps", "1"]


def _env(tmp_path) -> dict:
    # HF_HOME: no accelerate default config of this machine's user changes the launch
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}


def _losses(run_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line]


@pytest.mark.timeout(240)
def test_accelerate_multi_gpu_launch_runs_two_cpu_processes(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "run"
    cmd = [*ACCELERATE, "--multi_gpu", "--num_processes", "2", "-m", "tunescope",
           *_argv(tiny_model_dir["llama"], toy_csv, out, 8)]
    proc = subprocess.run(cmd, check=False, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                          timeout=200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("test accuracy") == 1  # only process 0 reports

    results = json.loads((out / "results.json").read_text())
    steps = -(-results["data_sizes"]["train"] // (8 * 2))  # one batch of 8 per process per step
    state = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps == 4
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no second run folder (and nothing in HF_HOME)

    ref = tmp_path / "one"
    assert main(_argv(tiny_model_dir["llama"], toy_csv, ref, 16)) == 0
    two, one = _losses(out), _losses(ref)
    assert len(two) == len(one) == steps
    np.testing.assert_allclose(two, one, rtol=LOSS_RTOL)


@pytest.mark.timeout(120)
def test_accelerate_cpu_launch_with_two_processes_is_refused(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "run"
    cmd = [*ACCELERATE, "--cpu", "--num_processes", "2", "-m", "tunescope",
           *_argv(tiny_model_dir["llama"], toy_csv, out, 8)]
    proc = subprocess.run(cmd, check=False, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True,
                          timeout=100)
    # tunescope exits 2 with one line; accelerate's --cpu launcher then raises CalledProcessError (exit 1)
    assert proc.returncode != 0
    assert [line for line in proc.stderr.splitlines() if line.startswith("tunescope: error")] == [
        next(line for line in proc.stderr.splitlines() if line.startswith(LAUNCH_ERROR))]
    assert "returned non-zero exit status 2" in proc.stderr
    assert not out.exists()


def test_the_lone_cpu_launch_environment_exits_2_in_process(tiny_model_dir, toy_csv, tmp_path, monkeypatch, capsys):
    """What accelerate's --cpu launcher hands its one process for --num_processes 2 (no world size anywhere)."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert main(_argv(tiny_model_dir["llama"], toy_csv, tmp_path / "run", 8)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(LAUNCH_ERROR) and len(err.splitlines()) == 1, err
    assert "accelerate launch --multi_gpu --num_processes N -m tunescope" in err
    monkeypatch.setenv("WORLD_SIZE", "1")  # a real launcher's process: no refusal (it may train)
    from tunescope.training.launch import lone_cpu_launch

    assert not lone_cpu_launch()
