"""`tunescope export RUN --format peft`: a SIFT run's delta as a peft SHiRA adapter that plain transformers + peft
load with the run's own test logits; and the one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tunescope.cli import main
from tunescope.data import load_classification

LIMIT, MAX_LENGTH = 48, 24


@pytest.fixture(scope="module")
def named_csv(toy_csv, tmp_path_factory):
    """toy_csv with the labels as words, so the label names are real names (0 -> rotten, 1 -> fresh)."""
    df = pd.read_csv(toy_csv)
    df["label"] = df["label"].map({0: "rotten", 1: "fresh"})
    path = tmp_path_factory.mktemp("named") / "named.csv"
    df.to_csv(path, index=False)
    return path


def _plain_logits(base_folder, adapter, csv) -> np.ndarray:
    """Test-split logits with nothing of tunescope but its data split: plain transformers + plain peft."""
    tok = AutoTokenizer.from_pretrained(str(adapter))
    base = AutoModelForSequenceClassification.from_pretrained(str(base_folder), num_labels=2,
                                                              pad_token_id=tok.pad_token_id)
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    texts = list(load_classification(str(csv), seed=0, limit=LIMIT).test["text"])
    enc = tok(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits.numpy()


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_sift_run_exports_a_shira_adapter_plain_peft_reproduces(arch, tiny_model_dir, named_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--strategy", "sift", "--model", str(tiny_model_dir[arch]), "--data", str(named_csv),
                 "--max-length", str(MAX_LENGTH), "--limit", str(LIMIT), "--batch-size", "16", "--lr", "1e-2",
                 "--out", str(run), "max_steps=3", "feature_change=false"]) == 0
    final_peft = run / "checkpoints" / "final-peft"  # written at the end of the run
    assert (final_peft / "adapter_config.json").is_file()
    capsys.readouterr()

    out = tmp_path / "exported"
    assert main(["export", str(run), "--format", "peft", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"peft SHiRA adapter: {out}" in printed and "PeftModel.from_pretrained" in printed

    reference = np.load(run / "logits.npz")["test_logits"]
    logits = _plain_logits(tiny_model_dir[arch], out, named_csv)
    assert np.abs(logits - reference).max() < 1e-6  # 0.0 here: the same fp32 weights
    assert np.array_equal(logits.argmax(1), reference.argmax(1))

    config = json.loads((out / "adapter_config.json").read_text())
    info = json.loads((out / "tunescope_export.json").read_text())
    assert config["peft_type"] == "SHIRA" and config["task_type"] == "SEQ_CLS" and config["r"] == info["r"]
    assert config["base_model_name_or_path"] == str(tiny_model_dir[arch].resolve())
    assert info["label_names"] == ["fresh", "rotten"]  # the data's own names, not "0" / "1"
    sift = json.loads((run / "results.json").read_text())["sift"]
    assert info["selected_entries"] == sift["selected_params"]
    assert info["padding_bytes"] == 12 * info["padding_entries"] == 12 * (info["stored_entries"] -
                                                                          info["selected_entries"])
    # the end-of-run export and the command's hold the same tensors
    ours, theirs = load_file(str(out / "adapter_model.safetensors")), load_file(
        str(final_peft / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # exporting again into the same folder replaces the earlier export; --json: its facts as the last line
    assert main(["export", str(run), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"adapter": str(out), **info}


def _fake_run(folder, strategy: str, final_files: dict[str, str] | None = None):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "m", "strategy": strategy}))
    if final_files is not None:
        final = folder / "checkpoints" / "final"
        final.mkdir(parents=True)
        for name, text in final_files.items():
            (final / name).write_text(text)
    return folder


@pytest.mark.parametrize("case, expected", [
    ("lora", "is not a SIFT run: its strategy is 'lora'"),
    ("unfinished", "has no final checkpoint"),
    ("no-delta", "holds no SIFT delta"),
    ("missing", "no such folder"),
    ("not-a-run", "not a tunescope run directory"),
    ("format", "invalid choice: 'onnx'"),
    ("out-taken", "is not an earlier export"),
])
def test_bad_input_exits_2_with_one_line(case, expected, tmp_path, capsys):
    run = {
        "lora": lambda: _fake_run(tmp_path / "r", "lora", {"adapter_config.json": "{}"}),
        "unfinished": lambda: _fake_run(tmp_path / "r", "sift"),
        "no-delta": lambda: _fake_run(tmp_path / "r", "sift", {"model.safetensors": ""}),
        "missing": lambda: tmp_path / "nowhere",
        "not-a-run": lambda: (tmp_path / "r").mkdir() or tmp_path / "r",
        "format": lambda: tmp_path,
        "out-taken": lambda: _fake_run(tmp_path / "r", "sift", {"sift_config.json": "{}",
                                                                "sift_delta.safetensors": ""}),
    }[case]()
    extra = {"format": ["--format", "onnx"], "out-taken": ["--out", str(tmp_path)]}.get(case, [])
    assert main(["export", str(run), *extra]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert expected in err and "\n" not in err and err.startswith("tunescope: error:") and not captured.out
