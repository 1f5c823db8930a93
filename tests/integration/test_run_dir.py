"""Run directories that never lie: a non-empty --out is refused unless resumed or overwritten, one process at a
time runs in a folder (RUN/.lock), --resume continues the saved run (its strategy, pretrain's flags), and
orchestrators reuse or resume their sub-runs only when the saved config matches."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tunescope.experiments.pretrain as pretrain_mod
from tunescope.cli import main
from tunescope.config import load_yaml, save_config
from tunescope.errors import UserError
from tunescope.experiments.finetune import FinetuneConfig
from tunescope.experiments.recipe import run_recipe, run_sub_run
from tunescope.experiments.rundir import RunDir, run_lock

pytestmark = pytest.mark.usefixtures("one_thread")


def _finetune_argv(model_dir: Path, csv: Path, out: Path, *extra: str) -> list[str]:
    """A fine-tune that takes about a second: the linear probe (`head`) on the tiny BERT."""
    return ["finetune", "--model", str(model_dir), "--data", str(csv), "--out", str(out), "--strategy", "head",
            "--limit", "40", "--no-feature-change", *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _old_run(folder: Path) -> dict[str, str]:
    """A folder holding an earlier run's files; returns name -> content, to check they stay untouched."""
    files = {"config.yaml": "strategy: lora\n", "results.json": '{"eval": {"accuracy": 0.99}}\n', "notes.txt": "x"}
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


# --- a non-empty --out --------------------------------------------------------------------------------------------


def test_non_empty_out_is_refused_and_left_untouched(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "old"
    files = _old_run(out)
    assert main(_finetune_argv(tiny_model_dir["bert"], toy_csv, out)) == 2
    line = _one_error_line(capsys)
    assert str(out) in line and "--resume" in line and "--overwrite" in line
    assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_overwrite_clears_the_folder_before_the_new_run(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "old"
    _old_run(out)
    assert main(_finetune_argv(tiny_model_dir["bert"], toy_csv, out, "--overwrite")) == 0
    assert not (out / "notes.txt").exists()  # nothing of the old run is left beside the new one
    assert load_yaml(out / "config.yaml")["strategy"] == "head"
    assert json.loads((out / "results.json").read_text())["strategy"] == "head"


def test_bad_config_writes_nothing_and_clears_nothing(tiny_model_dir, toy_csv, tmp_path, capsys):
    fresh, old = tmp_path / "fresh", tmp_path / "old"
    files = _old_run(old)
    assert main(_finetune_argv(tiny_model_dir["bert"], toy_csv, fresh, "--lr", "-1")) == 2
    assert not fresh.exists()
    assert main(_finetune_argv(tiny_model_dir["bert"], toy_csv, old, "--lr", "-1", "--overwrite")) == 2
    assert {p.name: p.read_text() for p in old.iterdir()} == files
    capsys.readouterr()


@pytest.mark.parametrize("argv,fragment", [
    pytest.param(["--resume", "--overwrite"], "--resume and --overwrite", id="resume-and-overwrite"),
    pytest.param(["--overwrite"], "holds no tunescope run", id="overwrite-a-folder-that-is-no-run"),
])
def test_refused_out_options(argv, fragment, tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    if "--resume" in argv:
        # The values _finetune_argv passes: a resumed run accepts only its saved ones.
        save_config(FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), strategy="head", limit=40,
                                   feature_change=False), out / "config.yaml")
    assert main(_finetune_argv(tiny_model_dir["bert"], toy_csv, out, *argv)) == 2
    assert fragment in _one_error_line(capsys)
    assert (out / "thesis.tex").read_text() == "precious"


def test_run_recipe_refuses_overwrites_and_drops_stale_results(tmp_path):
    rd = RunDir(tmp_path / "run")
    _old_run(rd.path)
    with pytest.raises(UserError, match="--resume .* --overwrite"):
        run_recipe("t", {"a": 1}, rd, lambda _: {}, write_report=False)

    def body(run_dir: RunDir) -> dict:
        assert not run_dir.results_file.exists()  # the old results never sit beside the new config.yaml
        return {"ok": True}

    run_recipe("t", {"a": 1}, rd, body, write_report=False, resume=True)
    assert (rd.path / "notes.txt").exists() and rd.read_results()["ok"]
    run_recipe("t", {"a": 2}, rd, body, write_report=False, overwrite=True)
    assert not (rd.path / "notes.txt").exists() and rd.saved_config() == {"a": 2}


# --- the lock ------------------------------------------------------------------------------------------------------


def test_second_process_on_the_same_out_names_the_holder(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "busy"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "tunescope", *_finetune_argv(tiny_model_dir["bert"], toy_csv, out)]
    with run_lock(RunDir(out)):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert f"pid {os.getpid()}" in line and str(out) in line
    assert not (out / ".lock").exists()  # released and removed


LOCK_PROBE = "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)"


def test_lock_is_held_for_the_whole_run(tmp_path):
    rd = RunDir(tmp_path / "run")

    def body(run_dir: RunDir) -> dict:
        assert run_dir.lock_file.read_text().strip() == str(os.getpid())
        probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(run_dir.lock_file)], capture_output=True,
                               text=True, timeout=60, check=False)
        assert probe.returncode != 0 and "BlockingIOError" in probe.stderr  # another process cannot take it
        return {}

    run_recipe("t", {}, rd, body, write_report=False)
    assert not rd.lock_file.exists()


def test_stale_lock_file_of_a_dead_process_does_not_block(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.lock_file.write_text("999999\n")  # its process died: the kernel dropped its flock
    run_recipe("t", {}, rd, lambda _: {"ok": True}, write_report=False)
    assert rd.read_results()["ok"]


def test_only_process_zero_locks_under_a_launcher(tmp_path, monkeypatch):
    rd = RunDir(tmp_path / "run")
    _old_run(rd.path)
    fd = os.open(rd.lock_file, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # process 0 holds it
    try:
        monkeypatch.setenv("RANK", "1")
        assert run_recipe("t", {}, rd, lambda _: {"rank": 1}, write_report=False)["rank"] == 1  # no deadlock
    finally:
        os.close(fd)
    assert json.loads(rd.results_file.read_text()) == {"eval": {"accuracy": 0.99}}  # rank 1 writes nothing


# --- --resume --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [["--strategy", "full"], ["strategy=full"]], ids=["flag", "override"])
def test_resume_with_another_strategy_names_the_saved_one(change, tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    save_config(FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), strategy="lora"),
                out / "config.yaml")
    assert main(["finetune", "--resume", "--out", str(out), *change]) == 2
    line = _one_error_line(capsys)
    assert "'full'" in line and "strategy 'lora'" in line and str(out) in line


PRETRAIN = ["--preset", "micro", "--steps", "4", "--batch-size", "2", "--max-length", "16", "--vocab-size", "300",
            "--eval-blocks", "4", "--checkpoint-steps", "0,2", "--probe", "none", "--learning-rate", "5e-3"]


def test_pretrain_resume_restores_flags_and_survives_a_kill_mid_checkpoint(toy_csv, tmp_path, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["pretrain", "--data", str(toy_csv), "--out", str(full), *PRETRAIN]) == 0

    # Killed while checkpoint 4 is written: its optimizer state is on disk, its state.json is not.
    real = pretrain_mod.atomic_write_json

    def write(path, data):
        if Path(path).name == "state.json" and data["step"] == 4:
            assert (Path(path).parent / "optimizer.pt").is_file()
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(pretrain_mod, "atomic_write_json", write)
    assert main(["pretrain", "--data", str(toy_csv), "--out", str(cut), *PRETRAIN]) == 130
    monkeypatch.setattr(pretrain_mod, "atomic_write_json", real)
    saved = (cut / "config.yaml").read_text()
    # The step-2 checkpoint kept its resume state until the new one was complete.
    assert (cut / "checkpoints" / "step-000002" / "optimizer.pt").is_file()

    assert main(["pretrain", "--resume", "--out", str(cut)]) == 0  # no flags: the saved ones, not the defaults
    assert (cut / "config.yaml").read_text() == saved
    a = load_file(full / "checkpoints" / "step-000004" / "model.safetensors")
    b = load_file(cut / "checkpoints" / "step-000004" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (full, cut))
    assert [c["heldout_loss"] for c in ra["checkpoints"]] == [c["heldout_loss"] for c in rb["checkpoints"]]
    steps = [json.loads(line)["step"] for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(line)["step"] for line in (full / "metrics.jsonl").read_text().splitlines()]


# --- orchestrators: sub-runs ---------------------------------------------------------------------------------------


def test_run_sub_run_reuses_resumes_or_refuses_by_saved_config(tmp_path):
    calls = []

    def run(**how) -> dict:
        calls.append(how)
        return {"ran": True}

    def sub(name: str, config: dict | None, results: dict | None) -> RunDir:
        rd = RunDir(tmp_path / name)
        rd.path.mkdir()
        if config is not None:
            rd.write_config(config)
        if results is not None:
            rd.write_results(results)
        return rd

    assert run_sub_run(sub("done", {"a": 1}, {"old": True}), {"a": 1}, run) == {"old": True} and not calls
    assert run_sub_run(sub("stopped", {"a": 1}, None), {"a": 1}, run) == {"ran": True}
    assert run_sub_run(sub("new", None, None), {"a": 1}, run) == {"ran": True}
    assert calls == [{"resume": True, "overwrite": False}, {"resume": False, "overwrite": True}]
    for name, results in (("done-other", {"old": True}), ("stopped-other", None)):
        with pytest.raises(UserError, match="a: 2 -> 1"):
            run_sub_run(sub(name, {"a": 2}, results), {"a": 1}, run)


def test_basins_refuses_a_non_empty_out_before_loading_anything(tmp_path):
    from tunescope.experiments import basins

    out = tmp_path / "basins"
    files = _old_run(out)
    with pytest.raises(UserError, match="--resume .* --overwrite"):
        basins.main([f"out={out}"])
    assert {p.name: p.read_text() for p in out.iterdir()} == files


def test_interrupted_compare_resumes_reusing_its_finished_runs(tiny_model_dir, toy_csv, tmp_path, capsys,
                                                                 monkeypatch):
    import tunescope.training.checkpoints as ckpt

    out = tmp_path / "cmp"
    argv = ["compare", "--strategies", "head,full", "--model", str(tiny_model_dir["llama"]), "--data", str(toy_csv),
            "--out", str(out), "--limit", "40", "--no-feature-change", "max_steps=4", "save_steps=2",
            "batch_size=8", "learning_rate=1e-3", "logging_steps=1"]
    real = ckpt.rotate_checkpoints

    def killed_at_step_4(folder, limit, newest, protected=None):
        if newest.name == "checkpoint-4":
            raise KeyboardInterrupt  # the run `full-seed0` stops after its checkpoint-4
        return real(folder, limit, newest, protected)

    monkeypatch.setattr(ckpt, "rotate_checkpoints", killed_at_step_4)
    assert main(argv) == 130
    monkeypatch.setattr(ckpt, "rotate_checkpoints", real)
    head = out / "head-seed0" / "results.json"
    assert head.is_file() and not (out / "full-seed0" / "results.json").exists()
    mtime = head.stat().st_mtime_ns

    capsys.readouterr()
    assert main(argv) == 2  # a non-empty --out: resume it or overwrite it
    assert "--resume" in _one_error_line(capsys)
    assert main([*argv, "--resume"]) == 0
    assert head.stat().st_mtime_ns == mtime  # reused, not run again
    full = json.loads((out / "full-seed0" / "results.json").read_text())
    records = [json.loads(line) for line in (out / "full-seed0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4] and full["strategy"] == "full"
    rows = json.loads((out / "results.json").read_text())["comparison"]["runs"]
    assert [r["strategy"] for r in rows] == ["head", "full"]
