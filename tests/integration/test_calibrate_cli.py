"""`tunescope calibrate RUN_DIR`: from saved logits and by re-running the checkpoint, against independent numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from tunescope.cli import main


def _ece(logits: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Independent ECE: loop over bins (lo, hi] by hand."""
    p = softmax(logits, axis=1)
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    return total


def test_calibrate_command(tiny_model_dir, toy_csv, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--strategy", "lora", "--model", str(tiny_model_dir["llama"]), "--data", str(toy_csv),
                 "--max-length", "16", "--limit", "48", "--out", str(run), "epochs=1", "batch_size=16"]) == 0
    original = json.loads((run / "results.json").read_text())["eval"]
    assert main(["calibrate", str(run), "--bins", "10"]) == 0
    printed = capsys.readouterr().out
    assert "ECE" in printed and "temperature" in printed
    z = np.load(run / "logits.npz")
    results = json.loads((run / "results.json").read_text())
    assert results["calibration"]["n_bins"] == 10
    assert results["eval"]["ece"] == pytest.approx(_ece(z["test_logits"], z["test_labels"], 10))
    assert original["ece"] == pytest.approx(_ece(z["test_logits"], z["test_labels"], 15))  # the after_train hook
    # Re-running the saved checkpoint reproduces the logits, hence the same calibration.
    assert main(["calibrate", str(run), "--rerun"]) == 0
    rerun = json.loads((run / "results.json").read_text())["eval"]
    assert rerun["ece"] == pytest.approx(original["ece"], abs=1e-6)
    assert rerun["temperature"] == pytest.approx(original["temperature"], rel=1e-4)
    assert "Reliability" in (run / "report.html").read_text() or "reliability" in (run / "report.html").read_text()


def test_calibrate_rejects_missing_run(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "nope")]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
