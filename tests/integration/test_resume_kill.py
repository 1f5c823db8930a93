"""Any kill is resumable: a fine-tune killed at an injected point while it writes a checkpoint, then
`tunescope finetune --resume`, ends with the very weights, logits and metrics log of an uninterrupted run.

Checkpoints are written into checkpoints/.staging and renamed into place once complete (training/checkpoints.py),
so each kill point below leaves a known newest COMPLETE checkpoint, which `--resume` must pick. The run: tiny Llama
(no dropout), full fine-tuning, 4 optimizer steps, a checkpoint every 2, save_total_limit 1. Every kill happens
while checkpoint-4 is written, so the previous complete checkpoint is checkpoint-2.

In-process kills raise `Killed`, a BaseException nothing catches (files on disk are then exactly what a SIGKILL
leaves); one case kills a real subprocess with SIGKILL at an injected point, and one runs SIFT, whose checkpoints
are its own sparse-delta format.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from transformers.trainer_callback import TrainerState

import tunescope.training.checkpoints as ckpt
from tunescope.cli import main
from tunescope.experiments.finetune import FinetuneConfig, finetune
from tunescope.training.checkpoints import latest_complete_checkpoint
from tunescope.training.trainer import StrategyTrainer

pytestmark = pytest.mark.usefixtures("one_thread")

STEP = 4  # the checkpoint being written when the run is killed
PREVIOUS = 2  # the complete checkpoint before it


class Killed(BaseException):
    """A simulated kill at an injected point."""


def _config(model_dir: Path, csv: Path, **extra) -> FinetuneConfig:
    settings = {"strategy": "full", "learning_rate": 1e-3, **extra}
    return FinetuneConfig(model=str(model_dir), data=str(csv), max_steps=STEP, save_steps=2, save_total_limit=1,
                          batch_size=8, logging_steps=1, limit=40, feature_change=False, **settings)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, toy_csv) -> Path:
    """An uninterrupted run."""
    out = tmp_path_factory.mktemp("kill") / "reference"
    finetune(_config(tiny_model_dir["llama"], toy_csv), out, write_report=False)
    return out


# --- injected kill points: each installs a kill with monkeypatch, while checkpoint-STEP is being saved ----------


def _kill_after_folder_appears(monkeypatch) -> None:
    """The checkpoint folder exists, nothing is in it yet."""
    real = StrategyTrainer.save_model

    def save_model(self, output_dir=None, _internal_call=False):
        if _internal_call and self.state.global_step == STEP:
            os.makedirs(output_dir, exist_ok=True)
            raise Killed
        return real(self, output_dir, _internal_call)

    monkeypatch.setattr(StrategyTrainer, "save_model", save_model)


def _kill_after_weights(monkeypatch) -> None:
    """The weights are written; optimizer, scheduler, RNG and trainer state are not."""
    real = StrategyTrainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        if self.state.global_step == STEP:
            assert (Path(output_dir) / "model.safetensors").is_file()  # the point is the one named
            raise Killed
        return real(self, output_dir)

    monkeypatch.setattr(StrategyTrainer, "_save_optimizer_and_scheduler", save)


def _kill_before_trainer_state(monkeypatch) -> None:
    """Everything but trainer_state.json (the completeness marker) is written."""
    real = TrainerState.save_to_json

    def save_to_json(self, json_path):
        if self.global_step == STEP:
            assert (Path(json_path).parent / "optimizer.pt").is_file()
            raise Killed
        return real(self, json_path)

    monkeypatch.setattr(TrainerState, "save_to_json", save_to_json)


def _kill_before_rename(monkeypatch) -> None:
    """The staged checkpoint is complete but not yet renamed into place."""
    real = ckpt.publish_checkpoint

    def publish(staged, final):
        if final.name == f"checkpoint-{STEP}":
            assert ckpt.is_complete(staged)
            raise Killed
        return real(staged, final)

    monkeypatch.setattr(ckpt, "publish_checkpoint", publish)


def _kill_after_rename(monkeypatch) -> None:
    """The new checkpoint is in place; the old one is not rotated away yet (both complete)."""
    real = ckpt.rotate_checkpoints

    def rotate(folder, limit, newest, protected=None):
        if newest.name == f"checkpoint-{STEP}":
            raise Killed
        return real(folder, limit, newest, protected)

    monkeypatch.setattr(ckpt, "rotate_checkpoints", rotate)


def _kill_mid_rotation(monkeypatch) -> None:
    """The old checkpoint is renamed to its trash name, not yet deleted."""
    real = ckpt.discard

    def discard(folder):
        if folder.name == f"checkpoint-{PREVIOUS}" and folder.exists():  # rotation's call, not publishing's
            os.rename(folder, folder.with_name(ckpt.TRASH_PREFIX + folder.name))
            raise Killed
        return real(folder)

    monkeypatch.setattr(ckpt, "discard", discard)


def _incomplete_in_place(out: Path) -> None:
    """After `_kill_after_rename`: checkpoint-STEP loses its trainer_state.json, as a checkpoint written in place
    by a run killed mid-save would (an older tunescope, or a copy): --resume must fall back to the previous one."""
    (out / "checkpoints" / f"checkpoint-{STEP}" / "trainer_state.json").unlink()


# id -> (kill installer, damage after the kill or None, the checkpoint --resume must continue from)
KILL_POINTS = {
    "after-folder-appears": (_kill_after_folder_appears, None, PREVIOUS),
    "after-weights": (_kill_after_weights, None, PREVIOUS),
    "before-trainer-state": (_kill_before_trainer_state, None, PREVIOUS),
    "before-rename": (_kill_before_rename, None, PREVIOUS),
    "after-rename-before-rotation": (_kill_after_rename, None, STEP),
    "mid-rotation": (_kill_mid_rotation, None, STEP),
    "incomplete-checkpoint-in-place": (_kill_after_rename, _incomplete_in_place, PREVIOUS),
}


def _train_records(run_dir: Path) -> list[tuple[int, float]]:
    """(step, loss) of every logged training step in metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def _assert_same_run(resumed: Path, reference: Path, weights: str = "model.safetensors") -> None:
    """Bit-identical final weights and logits, the same training log, and no leftovers of the kill."""
    a = load_file(reference / "checkpoints" / "final" / weights)
    b = load_file(resumed / "checkpoints" / "final" / weights)
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    la, lb = np.load(reference / "logits.npz"), np.load(resumed / "logits.npz")
    for key in ("validation_logits", "test_logits"):
        assert np.array_equal(la[key], lb[key]), key
    assert _train_records(resumed) == _train_records(reference)  # nothing logged twice, nothing missing
    names = sorted(p.name for p in (resumed / "checkpoints").iterdir())
    exported = ["final-peft"] if weights == "sift_delta.safetensors" else []  # a SIFT run's peft export
    assert names == [f"checkpoint-{STEP}", "final", *exported], names  # no staging, trash or extra checkpoint left


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_while_checkpointing_then_resume(point, reference, tiny_model_dir, toy_csv, tmp_path, monkeypatch):
    install, damage, resume_from = KILL_POINTS[point]
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        install(m)
        with pytest.raises(Killed):
            finetune(_config(tiny_model_dir["llama"], toy_csv), out, write_report=False)
    if damage is not None:
        damage(out)
    assert not (out / "results.json").exists()
    assert latest_complete_checkpoint(out / "checkpoints").name == f"checkpoint-{resume_from}"
    assert main(["finetune", "--resume", "--out", str(out)]) == 0
    _assert_same_run(out, reference)


KILL_SCRIPT = """
import json, os, signal, sys
from tunescope.experiments.finetune import FinetuneConfig, finetune
from tunescope.training.trainer import StrategyTrainer

real = StrategyTrainer._save_optimizer_and_scheduler

def save(self, output_dir):
    if self.state.global_step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no Python code runs after this
    return real(self, output_dir)

StrategyTrainer._save_optimizer_and_scheduler = save
finetune(FinetuneConfig(**json.loads(sys.argv[1])), sys.argv[2], write_report=False)
"""


def test_real_sigkill_mid_checkpoint_then_resume(reference, tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "run"
    config = json.dumps(dataclasses.asdict(_config(tiny_model_dir["llama"], toy_csv)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, config, str(out), str(STEP)], env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoints" / ".staging" / f"checkpoint-{STEP}" / "model.safetensors").is_file()
    assert (out / ".lock").is_file()  # the killed holder's lock file stays behind; it must not block
    assert main(["finetune", "--resume", "--out", str(out)]) == 0
    _assert_same_run(out, reference)


def test_sift_checkpoints_are_atomic_too(tiny_model_dir, toy_csv, tmp_path, monkeypatch):
    """SIFT writes its own checkpoint format (a sparse delta): killed before trainer_state.json, then resumed."""
    config = _config(tiny_model_dir["llama"], toy_csv, strategy="sift", sift_rate=0.2, learning_rate=1e-2)
    reference, out = tmp_path / "reference", tmp_path / "run"
    finetune(config, reference, write_report=False)
    with monkeypatch.context() as m:
        _kill_before_trainer_state(m)
        with pytest.raises(Killed):
            finetune(config, out, write_report=False)
    assert latest_complete_checkpoint(out / "checkpoints").name == f"checkpoint-{PREVIOUS}"
    assert main(["finetune", "--resume", "--out", str(out)]) == 0
    _assert_same_run(out, reference, weights="sift_delta.safetensors")
