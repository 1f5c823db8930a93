"""End to end through main([...]): a fine-tune on a tiny local model, its run directory, report and resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import yaml

from tunescope.cli import main


def _argv(model_dir, csv, out, *extra):
    return ["finetune", "--model", str(model_dir), "--data", str(csv), "--out", str(out), "--strategy", "lora",
            "--epochs", "2", "--lr", "1e-2", "logging_steps=2", "lora_dropout=0", *extra]


def test_finetune_writes_a_complete_run_dir(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_argv(tiny_model_dir["llama"], toy_csv, out, "--rank", "4")) == 0
    assert "report:" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.jsonl", "results.json", "report.html", "logits.npz"):
        assert (out / name).is_file(), name
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["lora_rank"] == 4 and config["epochs"] == 2.0 and config["logging_steps"] == 2
    results = json.loads((out / "results.json").read_text())
    for key in ("model", "data", "strategy", "seed", "trainable_params", "total_params", "wall_seconds"):
        assert key in results
    assert 0 <= results["eval"]["accuracy"] <= 1 and len(results["eval"]["accuracy_by_epoch"]) == 2
    assert (out / "checkpoints" / "final" / "adapter_model.safetensors").is_file()  # PEFT layout
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "http://" not in page and "https://" not in page
    assert "Learning curves" in page and "Evaluation" in page
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").is_file()


def test_resume_continues_from_last_checkpoint(tiny_model_dir, toy_csv, tmp_path):
    full = tmp_path / "full"
    assert main(_argv(tiny_model_dir["gpt2"], toy_csv, full, "--epochs", "2")) == 0
    # Emulate an interruption during epoch 2: drop what epoch 2 and the end of the run produced.
    part = tmp_path / "part"
    shutil.copytree(full, part)
    checkpoints = sorted((part / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) == 2
    shutil.rmtree(checkpoints[-1])
    shutil.rmtree(part / "checkpoints" / "final")
    for name in ("results.json", "report.html", "logits.npz"):
        (part / name).unlink()
    assert main(["finetune", "--resume", "--out", str(part)]) == 0
    a, b = np.load(full / "logits.npz"), np.load(part / "logits.npz")
    np.testing.assert_allclose(a["test_logits"], b["test_logits"], atol=1e-5)
    assert json.loads((part / "results.json").read_text())["eval"]["accuracy"] == \
        json.loads((full / "results.json").read_text())["eval"]["accuracy"]


def test_assets_list(capsys):
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("minilm-l6", "smollm2-135m", "rotten_tomatoes", "tweets_sentiment", "news_text"):
        assert name in out
