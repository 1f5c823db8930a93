"""`tunescope pretrain` end to end (micro preset, a few steps), resume, and `jump` over its checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import tunescope.experiments.pretrain as pretrain_mod
from tunescope.cli import main

ARGS = ["--preset", "micro", "--steps", "4", "--batch-size", "2", "--max-length", "16", "--vocab-size", "300",
        "--eval-blocks", "4", "--checkpoint-steps", "0,2", "--probe", "none", "--jreg", "0.5",
        "--noise-sigma", "0.01"]  # JREG and GO on: the resume test below then covers both


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, toy_csv):
    """One uninterrupted run (with JREG), shared by the tests below; returns (run dir, printed output)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("pretrain") / "pt"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["pretrain", "--data", str(toy_csv), "--out", str(out), *ARGS]) == 0
    return out, buf.getvalue()


def test_pretrain_writes_checkpoints_with_jump_profiles(full_run, tmp_path, toy_csv):
    out, printed = full_run
    assert "held-out loss" in printed
    res = json.loads((out / "results.json").read_text())
    assert [c["step"] for c in res["checkpoints"]] == [0, 2, 4]
    for c in res["checkpoints"]:
        assert len(c["psi"]) == 4 and c["heldout_ppl"] == pytest.approx(2.718281828 ** c["heldout_loss"], rel=1e-6)
    assert res["jreg"] == {"lambda": 0.5, "form": "jump"}
    assert res["jump"]["psi"] == res["checkpoints"][-1]["psi"]
    assert res["checkpoints"][-1]["heldout_loss"] < res["checkpoints"][0]["heldout_loss"]
    for step in (0, 2, 4):
        assert (out / "checkpoints" / f"step-{step:06d}" / "model.safetensors").is_file()
    penalties = [r["jreg_penalty"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                 if r["kind"] == "train"]
    assert penalties and all(p is not None and p >= 0 for p in penalties)
    assert "Final-layer jump" in (out / "report.html").read_text()

    # `tunescope jump` on the run directory expands to its checkpoints.
    jout = tmp_path / "jump"
    assert main(["jump", "--model", str(out), "--data", str(toy_csv), "--limit", "4", "--max-length", "16",
                 "--out", str(jout)]) == 0
    labels = [m["model"] for m in json.loads((jout / "results.json").read_text())["jump"]["models"]]
    assert labels == ["pt@0", "pt@2", "pt@4"]


def test_resume_after_interruption_gives_the_same_weights(full_run, tmp_path, toy_csv, monkeypatch):
    full = full_run[0]

    cut = tmp_path / "cut"
    real_step = pretrain_mod.train_step
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the step-2 checkpoint
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "train_step", interrupted)
    assert main(["pretrain", "--data", str(toy_csv), "--out", str(cut), *ARGS]) == 130
    assert not (cut / "results.json").exists()
    monkeypatch.setattr(pretrain_mod, "train_step", real_step)
    assert main(["pretrain", "--data", str(toy_csv), "--out", str(cut), "--resume", *ARGS]) == 0
    a = load_file(full / "checkpoints" / "step-000004" / "model.safetensors")
    b = load_file(cut / "checkpoints" / "step-000004" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (full, cut))
    assert [c["heldout_loss"] for c in ra["checkpoints"]] == [c["heldout_loss"] for c in rb["checkpoints"]]


def test_go_pretraining_perturbs_by_sigma_and_restores_every_step(tmp_path, toy_csv, monkeypatch):
    from tunescope.training.noise import GaussianWeightNoise

    seen = []
    real_restore = GaussianWeightNoise.restore

    def spy(self):
        if self.active:  # the weights the step's forward/backward saw vs the theta that gets the update
            diff = torch.cat([(p.data - orig).flatten() for p, orig in zip(self.params, self._saved)])
            seen.append(float(diff.std()))
        real_restore(self)

    monkeypatch.setattr(GaussianWeightNoise, "restore", spy)
    out = tmp_path / "go"
    assert main(["pretrain", "--data", str(toy_csv), "--out", str(out), *ARGS[:-2], "--noise-sigma", "0.02"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["go"]["noise_sigma"] == 0.02 and res["go"]["draws"] == 4 == len(seen)
    assert all(s == pytest.approx(0.02, rel=0.05) for s in seen)


def test_bad_preset_is_a_one_line_error(tmp_path, toy_csv, capsys):
    assert main(["pretrain", "--preset", "huge", "--data", str(toy_csv), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "huge" in err and "tiny" in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["pretrain", "jump"])
def test_help_renders(command, capsys):
    assert main([command, "--help"]) == 0  # argparse help must format (a stray % in a help text breaks it)
    assert ("--jreg-form" if command == "pretrain" else "--model") in capsys.readouterr().out
