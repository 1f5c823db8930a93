"""`tunescope ntk` end to end on a tiny saved model: P equals its formula on independently extracted features."""

from __future__ import annotations

import json

import numpy as np

from tunescope.cli import main
from tunescope.data import load_classification
from tunescope.data.tokenize import collator, tokenize_classification
from tunescope.diagnostics.features import extract_features
from tunescope.experiments.ntk import ntk_subset
from tunescope.models.load import load_classifier


def test_ntk_command(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "ntk"
    code = main(["ntk", "--model", str(tiny_model_dir["gpt2"]), "--data", str(toy_csv), "--strategy", "full",
                 "--samples", "10", "--max-length", "24", "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())["ntk"]
    assert res["n_samples"] == 10 and res["exact"] and res["ft_ratio"] > 0.0  # not bounded by 1: Pd, Fd may cancel
    assert 1.0 <= res["pre_train_effective_rank"] <= 20.0
    printed = capsys.readouterr().out
    assert "FT ratio" in printed and "rank of P" in printed
    # Independent: the features of the same 10 examples give K_P = Phi Phi^T (GPT-2's score head has no bias).
    data = load_classification(str(toy_csv), seed=0)
    model, tok = load_classifier(str(tiny_model_dir["gpt2"]), data.num_labels)
    train = tokenize_classification(data, tok, 24)["train"]
    phi, _ = extract_features(model, ntk_subset(train, 10, 0), collator(tok))
    with np.load(out / "kernels.npz") as z:
        np.testing.assert_allclose(z["kernel_p"], (phi.double() @ phi.double().T).numpy(), rtol=1e-4, atol=1e-6)
        assert z["f"].shape == (20, 20)
        np.testing.assert_allclose(np.diag(z["f"]), z["f_diag_exact"], rtol=1e-6)
    assert "eNTK decomposition" in (out / "report.html").read_text()


def test_ntk_rejects_bad_samples(tmp_path, capsys):
    assert main(["ntk", "--samples", "1", "--out", str(tmp_path / "n")]) == 2
    assert "samples" in capsys.readouterr().err
