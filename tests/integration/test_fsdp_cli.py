"""FSDP2 on two CPU processes through accelerate's own launcher: full and LoRA fine-tuning, and DiagnosticsCallback
reporting the per-layer numbers of the FULL tensors.

    accelerate launch --use_fsdp --fsdp_version 2 --fsdp_state_dict_type FULL_STATE_DICT --num_processes 2 ...

accelerate by itself would train these CPU processes with DDP (training/launch.py says why); the run below must be
sharded (DTensor parameters, distributed type FSDP) and must match one process over the same global batch of 16
(2 x 8): the same logged losses, the same final weights, and the same diagnostics table at the measured steps
(gradient norms of the full tensors, although each process holds half of every one). The tiny Llama has no
dropout and LoRA runs with lora_dropout 0, so both runs do the very same computation up to summation order.

This module is also the launched script: `accelerate launch ... -m tests.integration.test_fsdp_cli OUT STRATEGY`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.numpy import load_file

from tunescope.errors import UserError

REPO = Path(__file__).resolve().parents[2]
LIMIT = 64  # training examples: 4 optimizer steps of 16 (2 x 8)
EVERY = 2  # diagnostics every 2 optimizer steps: steps 2 and 4
RTOL = 1e-5  # same examples, same global batch: only the order of float sums differs (measured: ~1e-7)
WEIGHTS = {"full": "model.safetensors", "lora": "adapter_model.safetensors"}
LAUNCH = ["-m", "accelerate.commands.launch", "--use_fsdp", "--fsdp_version", "2", "--fsdp_state_dict_type",
          "FULL_STATE_DICT", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no"]


def _config(model_dir, csv, strategy: str, batch_size: int):
    from tunescope import FinetuneConfig

    return FinetuneConfig(model=str(model_dir), data=str(csv), strategy=strategy, epochs=1, batch_size=batch_size,
                          limit=LIMIT, logging_steps=1, feature_change=False, lora_dropout=0.0)


def _run(config, out: Path) -> None:
    """finetune(config, out) with a DiagnosticsCallback every EVERY steps; process 0 writes out/diag.json."""
    from tunescope import DiagnosticsCallback, finetune
    from tunescope.data.tokenize import probe_batches
    from tunescope.diagnostics.sharded import is_sharded
    from tunescope.io import is_main_process
    from tunescope.training.addons import AddonBase

    class Diagnose(AddonBase):
        name = "test-diagnose"
        callback = None

        def callbacks(self, run):
            probe = probe_batches(run.tokenized["train"], run.tokenizer, batch_size=8, num_batches=2, seed=0)
            self.callback = DiagnosticsCallback(probe, every_n_steps=EVERY)
            return [self.callback]

        def after_train(self, run):
            if is_main_process():
                trainer = run.trainer
                facts = {"history": self.callback.history, "world_size": trainer.args.world_size,
                         "fsdp": bool(trainer.is_fsdp_enabled), "sharded": is_sharded(trainer.model),
                         "distributed_type": str(trainer.accelerator.distributed_type)}
                (out / "diag.json").write_text(json.dumps(facts))

    finetune(config, out, extra_addons=[Diagnose()])


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_fsdp_on_two_cpu_processes_matches_one_process(strategy, tiny_model_dir, toy_csv, tmp_path):
    out, ref = tmp_path / "fsdp", tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, *LAUNCH, "-m", "tests.integration.test_fsdp_cli", str(out), str(tiny_model_dir["llama"]),
           str(toy_csv), strategy]
    proc = subprocess.run(cmd, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    facts = json.loads((out / "diag.json").read_text())
    assert facts["fsdp"] and facts["sharded"] and facts["world_size"] == 2, facts  # not DDP in disguise
    assert facts["distributed_type"] == "DistributedType.FSDP"

    _run(_config(tiny_model_dir["llama"], toy_csv, strategy, 16), ref)
    one = json.loads((ref / "diag.json").read_text())
    assert not one["sharded"] and one["world_size"] == 1

    # the same training: every logged loss, the evaluation, the final weights (gathered from the shards)
    losses = [[r["loss"] for r in _metrics(d) if "loss" in r] for d in (out, ref)]
    assert len(losses[0]) == len(losses[1]) == LIMIT // 16
    np.testing.assert_allclose(losses[0], losses[1], rtol=RTOL)
    evals = [[r["eval_loss"] for r in _metrics(d) if "eval_loss" in r] for d in (out, ref)]
    np.testing.assert_allclose(evals[0], evals[1], rtol=RTOL)
    got, want = (load_file(d / "checkpoints" / "final" / WEIGHTS[strategy]) for d in (out, ref))
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-6, err_msg=name)

    # the same diagnostics table at steps 2 and 4: per-layer norms of the full tensors, not of one shard
    assert [h["step"] for h in facts["history"]] == [h["step"] for h in one["history"]] == [EVERY, 2 * EVERY]
    for sharded, single in zip(facts["history"], one["history"]):
        for got_row, want_row in zip(sharded["layers"], single["layers"]):
            assert set(got_row) == set(want_row)
            for key in ("param_grad_norm", "param_grad_rel", "act_grad_norm", "attn_entropy"):
                assert got_row[key] == pytest.approx(want_row[key], rel=1e-4), (sharded["step"], got_row["layer"], key)
    logged = [r for r in _metrics(out) if "diag/layer_00/param_grad_norm" in r]  # reached the Trainer's log once
    assert [r["step"] for r in logged] == [EVERY, 2 * EVERY]


def _trainer(state_dict_type: str, ignored=None) -> SimpleNamespace:
    model = SimpleNamespace(_ddp_params_and_buffers_to_ignore=ignored) if ignored else SimpleNamespace()
    plugin = SimpleNamespace(state_dict_type=f"StateDictType.{state_dict_type}")
    return SimpleNamespace(is_fsdp_enabled=True, model=model,
                           accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin)))


def test_fsdp_refuses_a_sharded_state_dict_and_self_reducing_strategies():
    from tunescope.training.launch import check_fsdp

    check_fsdp(_trainer("FULL_STATE_DICT"))  # accepted
    with pytest.raises(UserError, match="bad value SHARDED_STATE_DICT for --fsdp_state_dict_type: accepted "
                                        "FULL_STATE_DICT"):
        check_fsdp(_trainer("SHARDED_STATE_DICT"))
    with pytest.raises(UserError, match="reduces the gradients of 2 of its own parameters \\(e.g. 'a.weight'; sift "
                                        "does\\), which FSDP would shard; run it with DDP"):
        check_fsdp(_trainer("FULL_STATE_DICT", ignored=["a.weight", "b.weight"]))


if __name__ == "__main__":  # one process of the FSDP launch above
    out_dir, model_dir, data, strategy = sys.argv[1:5]
    _run(_config(model_dir, data, strategy, 8), Path(out_dir))
