"""`tunescope compare` end to end on a tiny saved model and a local CSV: table, summary, report, reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunescope.cli import main


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir, toy_csv):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    argv = ["compare", "--strategies", "head,lp-ft", "--seeds", "0,1", "--model", str(tiny_model_dir["bert"]),
            "--data", str(toy_csv), "--out", str(out), "--max-length", "16", "--limit", "48", "--ntk-samples", "6",
            "epochs=1", "batch_size=16", "learning_rate=1e-3", "eval_batch_size=64"]
    return out, argv, main(argv)


def test_compare_writes_one_table_and_report(compared, capsys):
    out, _, code = compared
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    summary = {e["strategy"]: e for e in results["comparison"]["summary"]}
    assert set(summary) == {"head", "lp-ft"} and results["seeds"] == [0, 1]
    for strategy, entry in summary.items():
        runs = [json.loads((out / f"{strategy}-seed{s}" / "results.json").read_text()) for s in (0, 1)]
        accs = [r["eval"]["accuracy"] for r in runs]
        assert entry["n_seeds"] == 2
        assert entry["accuracy"] == pytest.approx(np.mean(accs))
        assert entry["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
        assert {r["seed"] for r in runs} == {0, 1}
        for r in runs:  # every classification run carries the LP-FT analyses
            assert {"ece", "mce", "brier", "temperature", "ece_after_ts", "nll_after_ts"} <= set(r["eval"])
            assert {"init", "after_lp", "after_ft"} <= set(r["head_norm"])
            assert {"cosine", "l2"} <= set(r["feature_change"])
    head = json.loads((out / "head-seed0" / "results.json").read_text())
    # LP alone: nothing trains after the probe, so the head norm and the features do not move.
    assert head["head_norm"]["after_ft"] == pytest.approx(head["head_norm"]["after_lp"])
    assert head["feature_change"]["l2"] == pytest.approx(0.0, abs=1e-5)
    assert head["ntk"]["ft_ratio"] == 0.0
    lpft = json.loads((out / "lp-ft-seed0" / "results.json").read_text())
    assert lpft["ntk"]["ft_ratio"] > 0.0 and lpft["ntk"]["n_samples"] == 6
    assert lpft["feature_change"]["l2"] > 0
    report = (out / "report.html").read_text()
    assert "Strategy comparison" in report and "data:image/png;base64" in report


def test_compare_reuses_finished_runs(compared, capsys):
    out, argv, _ = compared
    before = json.loads((out / "results.json").read_text())["comparison"]["summary"]
    mtime = (out / "lp-ft-seed1" / "results.json").stat().st_mtime
    assert main([*argv, "--resume"]) == 0  # a non-empty --out is continued only when asked to
    assert (out / "lp-ft-seed1" / "results.json").stat().st_mtime == mtime
    after = json.loads((out / "results.json").read_text())["comparison"]["summary"]
    assert after == before
    printed = capsys.readouterr().out
    assert "lp-ft" in printed and "head" in printed


def test_compare_rejects_bad_strategies(tmp_path, capsys):
    assert main(["compare", "--strategies", "full,lp-fft", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "lp-fft" in err and "lp-ft" in err and err.count("\n") == 1
    assert main(["compare", "--strategies", "full", "--seeds", "0,a", "--out", str(tmp_path / "y")]) == 2
