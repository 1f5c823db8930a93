"""Scale-out through the standard launcher: `torchrun --nproc_per_node 2 -m tunescope finetune` on the CPU.

Two processes must form one gloo process group and split the data (half the optimizer steps of one process),
only process 0 writes the run directory, and the logged losses must be those of one process over the same global
batch (2 x 8 = 16): each process's loss is a per-batch mean, so no factor of the world size may creep in. SIFT is
the strategy with its own distributed code path (the selection gradient is all-reduced before the top-k), so it is
the one launched here. The tiny Llama has no dropout, so the two runs see the very same computation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tunescope.cli import main

# Same examples, same global batch: the losses may differ only by float summation order.
LOSS_RTOL = 1e-5  # measured: ~2e-7


def _argv(model_dir, csv, out, batch_size: int, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model_dir), "--data", str(csv), "--epochs", "1", "--batch-size",
            str(batch_size), "--out", str(out), "--no-feature-change", "--logging-steps", "1", *extra]


def _sift_argv(model_dir, csv, out, batch_size: int) -> list[str]:
    return _argv(model_dir, csv, out, batch_size, "--strategy", "sift", "--sift-rate", "0.2")


def _losses(run_dir) -> tuple[list[float], list[float]]:
    """(training loss of every logged step, validation loss of every evaluation) from metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r], [r["eval_loss"] for r in records if "eval_loss" in r]


@pytest.mark.timeout(400)
def test_torchrun_two_processes_split_the_data(tiny_model_dir, toy_csv, tmp_path, tmp_path_factory):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tunescope",
           *_sift_argv(tiny_model_dir["llama"], toy_csv, out, 8)]
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

    # One process over the same global batch of 16 logs the same losses (before the fix: 2x, the Trainer scaled
    # a per-batch mean loss by the world size as if it were a sum over tokens).
    ref = tmp_path_factory.mktemp("one-process") / "run"
    assert main(_sift_argv(tiny_model_dir["llama"], toy_csv, ref, 16)) == 0
    (train2, eval2), (train1, eval1) = _losses(out), _losses(ref)
    assert len(train2) == len(train1) == steps and len(eval2) == len(eval1) == 1
    np.testing.assert_allclose(train2, train1, rtol=LOSS_RTOL)
    np.testing.assert_allclose(eval2, eval1, rtol=LOSS_RTOL)


def test_gradient_accumulation_gives_the_losses_of_the_whole_batch(tiny_model_dir, toy_csv, tmp_path):
    """2 micro-batches of 8 accumulated = one batch of 16: same logged losses (a per-batch mean loss must be
    divided by the accumulation steps; the Trainer skipped that when it passed num_items_in_batch along)."""
    model, common = tiny_model_dir["llama"], ("--strategy", "full", "--max-steps", "3", "--lr", "1e-3")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([*_argv(model, toy_csv, one, 16), *common]) == 0
    assert main([*_argv(model, toy_csv, two, 8), *common, "--gradient-accumulation-steps", "2"]) == 0
    (train_two, _), (train_one, _) = _losses(two), _losses(one)
    assert len(train_two) == len(train_one) == 3
    np.testing.assert_allclose(train_two, train_one, rtol=LOSS_RTOL)


def test_launch_without_out_is_a_user_error(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["finetune", "--epochs", "1"]) == 2
    assert "--out" in capsys.readouterr().err
