"""An interrupted `tunescope sft` run resumes: killed while it writes a checkpoint, then `tunescope sft --resume`
ends with the very weights, evaluation and training log of an uninterrupted run (LoRA and SIFT, tiny Llama).

The kill machinery is tests/integration/test_resume_kill.py's: `Killed` (a BaseException nothing catches, so the
files on disk are what a SIGKILL leaves) raised at an injected point while checkpoint-4 of 4 optimizer steps is
written (before its trainer_state.json, the completeness marker: --resume continues from checkpoint-2; or after it
is renamed into place: from checkpoint-4). LoRA keeps its default dropout, so the resumed run also has to restore
the random state. One case kills a real subprocess with SIGKILL right after the adapter weights are written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.integration.test_resume_kill import (
    PREVIOUS,
    STEP,
    Killed,
    _kill_after_rename,
    _kill_before_trainer_state,
    _train_records,
)
from tests.unit._sft_helpers import messages_rows, save_tiny_llama, write_jsonl
from tunescope.cli import main
from tunescope.experiments.sft import SFTConfig, sft
from tunescope.training.checkpoints import latest_complete_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS = {"lora": "adapter_model.safetensors", "sift": "sift_delta.safetensors"}
SETTINGS = {"lora": {"lora_rank": 4}, "sift": {"sift_rate": 0.05}}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("resume-llama"))


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("resume-data") / "chat.jsonl", messages_rows(60))


def _config(model: Path, data: Path, strategy: str) -> SFTConfig:
    return SFTConfig(model=str(model), data=str(data), strategy=strategy, learning_rate=5e-3, max_steps=STEP,
                     save_steps=2, save_total_limit=1, batch_size=8, eval_batch_size=16, logging_steps=1,
                     max_length=48, answer_max_new_tokens=2, **SETTINGS[strategy])


@pytest.fixture(scope="module")
def references(tiny_llama, chat_data, tmp_path_factory) -> dict[str, Path]:
    """One uninterrupted run per strategy."""
    root = tmp_path_factory.mktemp("resume-reference")
    for strategy in WEIGHTS:
        sft(_config(tiny_llama, chat_data, strategy), root / strategy, write_report=False)
    return {s: root / s for s in WEIGHTS}


def _assert_same_run(resumed: Path, reference: Path, strategy: str) -> None:
    """Bit-identical final weights, the same test evaluation and training log, no leftovers of the kill."""
    a = load_file(reference / "checkpoints" / "final" / WEIGHTS[strategy])
    b = load_file(resumed / "checkpoints" / "final" / WEIGHTS[strategy])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((run / "results.json").read_text()) for run in (reference, resumed))
    for key in ("loss", "mean_token_accuracy", "task_accuracy_loglik", "task_accuracy_generate", "validation_loss"):
        assert rb["eval"][key] == ra["eval"][key], key
    assert _train_records(resumed) == _train_records(reference)  # nothing logged twice, nothing missing
    assert len(_train_records(reference)) == STEP
    names = sorted(p.name for p in (resumed / "checkpoints").iterdir())  # no staging, trash or extra checkpoint
    assert names == sorted(p.name for p in (reference / "checkpoints").iterdir()), names
    assert f"checkpoint-{STEP}" in names and f"checkpoint-{PREVIOUS}" not in names


@pytest.mark.parametrize("strategy, install, resume_from", [
    ("lora", _kill_before_trainer_state, PREVIOUS),
    ("lora", _kill_after_rename, STEP),
    ("sift", _kill_before_trainer_state, PREVIOUS),
])
def test_killed_sft_run_resumes_to_the_uninterrupted_result(strategy, install, resume_from, references, tiny_llama,
                                                            chat_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        install(m)
        with pytest.raises(Killed):
            sft(_config(tiny_llama, chat_data, strategy), out, write_report=False)
    assert not (out / "results.json").exists()
    assert latest_complete_checkpoint(out / "checkpoints").name == f"checkpoint-{resume_from}"
    assert main(["sft", "--resume", "--out", str(out)]) == 0
    _assert_same_run(out, references[strategy], strategy)


KILL_SCRIPT = """
import json, os, signal, sys
from tunescope.experiments.sft import SFTConfig, sft
from tunescope.training.trainer import StrategyTrainer

real = StrategyTrainer._save_optimizer_and_scheduler

def save(self, output_dir):
    if self.state.global_step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no Python code runs after this
    return real(self, output_dir)

StrategyTrainer._save_optimizer_and_scheduler = save
sft(SFTConfig(**json.loads(sys.argv[1])), sys.argv[2], write_report=False)
"""


def test_real_sigkill_then_resume(references, tiny_llama, chat_data, tmp_path):
    out = tmp_path / "run"
    config = json.dumps(dataclasses.asdict(_config(tiny_llama, chat_data, "lora")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, config, str(out), str(STEP)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoints" / ".staging" / f"checkpoint-{STEP}" / WEIGHTS["lora"]).is_file()
    assert main(["sft", "--resume", "--out", str(out)]) == 0
    _assert_same_run(out, references["lora"], "lora")


def test_resume_refuses_another_strategy_and_an_empty_folder(references, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    (run / "config.yaml").write_text((references["lora"] / "config.yaml").read_text())
    assert main(["sft", "--resume", "--out", str(run), "--strategy", "sift"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strategy" in err[0] and "keeps its saved config" in err[0], err
    assert main(["sft", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0], err
