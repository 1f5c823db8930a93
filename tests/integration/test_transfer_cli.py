"""`tunescope transfer` end to end on a tiny model (source UNDER / OVER, then three target strategies), its
resumability, and the paper's criterion on planted summaries."""

from __future__ import annotations

import json
import time

import pytest

from tunescope.cli import main
from tunescope.experiments.transfer import finding, summarise

pytestmark = pytest.mark.usefixtures("one_thread")


def _argv(model, csv, out):
    return ["transfer", "--model", str(model), "--source", str(csv), "--target", str(csv), "--seeds", "0",
            "--under-epochs", "0.25", "--over-epochs", "3", "--target-epochs", "1", "--out", str(out),
            "batch_size=16", "max_length=16", "probe_batch_size=8"]


def test_transfer_grid_results_and_resume(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "transfer"
    assert main(_argv(tiny_model_dir["bert"], toy_csv, out)) == 0
    printed = capsys.readouterr().out
    assert "source over" in printed and "lora-inflection" in printed and "report:" in printed
    t = json.loads((out / "results.json").read_text())["transfer"]
    assert set(t["sources"]) == {"under", "over"} and t["sources"]["under"]["epochs"] == 0.25
    assert isinstance(t["sources"]["over"]["saturated"], bool)
    assert len(t["runs"]) == 6 and set(t["summary"]["over"]) == {"full", "lora", "lora-inflection"}
    for row in t["runs"]:
        assert len(row["diagnostics_before"]) == len(row["diagnostics_after"]) == 4
        if row["strategy"] == "lora-inflection":  # LoRA went exactly where the diagnosis pointed (width 1 of 4)
            assert row["adapted_layers"] == row["inflection_layers"] and len(row["adapted_layers"]) == 1
    full = next(r for r in t["runs"] if r["strategy"] == "full")
    inflection = next(r for r in t["runs"] if r["strategy"] == "lora-inflection")
    assert inflection["trainable_params"] < full["trainable_params"]
    assert set(t["finding"]["gains"]) == {"under", "over"} and isinstance(t["finding"]["reproduces"], bool)
    assert (out / "report.html").is_file()

    # A second call with --resume finds every finished run and only re-assembles the table.
    start = time.perf_counter()
    assert main([*_argv(tiny_model_dir["bert"], toy_csv, out), "--resume"]) == 0
    assert time.perf_counter() - start < 10
    again = json.loads((out / "results.json").read_text())["transfer"]
    assert again["summary"] == t["summary"]


def _rows(accs: dict) -> list[dict]:
    return [{"regime": regime, "strategy": strategy, "seed": i, "accuracy": a, "trainable_params": 1}
            for (regime, strategy), values in accs.items() for i, a in enumerate(values)]


def test_finding_holds_only_when_over_gains_and_under_loses():
    paper = summarise(_rows({("under", "lora"): [0.8, 0.8], ("under", "lora-inflection"): [0.7, 0.7],
                             ("over", "lora"): [0.7, 0.7], ("over", "lora-inflection"): [0.75, 0.75]}))
    f = finding(paper)
    assert f["reproduces"] is True
    assert f["gains"]["under"]["vs_lora"] == pytest.approx(-0.1) and f["gains"]["over"]["vs_lora"] == pytest.approx(0.05)
    ours = summarise(_rows({("under", "lora"): [0.76], ("under", "lora-inflection"): [0.58],
                            ("over", "lora"): [0.75], ("over", "lora-inflection"): [0.72]}))
    assert finding(ours)["reproduces"] is False
    assert finding(summarise(_rows({("over", "lora"): [0.7]})))["reproduces"] is None  # not enough to judge
