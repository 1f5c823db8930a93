"""`tunescope diagnose` end to end in-process on a tiny saved model and a local CSV."""

import json

import pandas as pd
import pytest

from tunescope.cli import main
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    texts, labels = toy_sentiment(80, seed=5)
    tok = tiny_tokenizer(texts)
    for seed in (0, 1):
        model = tiny_classifier("bert", tok, seed=seed, num_layers=8)
        model.save_pretrained(root / f"m{seed}")
        tok.save_pretrained(root / f"m{seed}")
    pd.DataFrame({"text": texts, "label": labels}).to_csv(root / "toy.csv", index=False)
    return root


def test_diagnose_writes_table_selection_and_report(assets, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["diagnose", "--model", str(assets / "m0"), "--data", str(assets / "toy.csv"),
                 "--against", str(assets / "m1"), "--probe-batches", "2", "--probe-batch-size", "8",
                 "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    found = results["diagnostics"]
    assert len(found["layers"]) == 8
    assert found["inflection_layers"] == list(range(found["inflection_layers"][0], found["inflection_layers"][0] + 2))
    assert set(found["layers"][0]) >= {"layer", "attn_entropy", "attn_entropy_norm", "act_grad_norm",
                                       "param_grad_norm", "param_grad_rel", "delta_cka"}
    assert all(0.0 < r["delta_cka"] <= 1.0 for r in found["layers"])  # a different random model
    assert found["reason"] and "\n" not in found["reason"]
    report = (out / "report.html").read_text()
    assert "Layer diagnostics and inflection layers" in report and "data:image/png;base64" in report
    printed = capsys.readouterr().out
    assert "<- inflection" in printed and "inflection layers:" in printed


def test_diagnose_bad_width_exits_2(assets, tmp_path, capsys):
    code = main(["diagnose", "--model", str(assets / "m0"), "--data", str(assets / "toy.csv"), "--width", "0",
                 "--out", str(tmp_path / "bad")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inflection_width" in err[0]


def test_bench_diagnostics_prints_the_interface_keys(capsys):
    code = main(["bench", "diagnostics", "model=tiny", "repeats=1", "batch_size=4", "seq_len=8", "threads=1",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("overhead_ratio", "naive_speedup", "peak_mem_ratio"):
        assert result[key] > 0 and result[key] == result[key]
    assert result["overhead_ratio"] == pytest.approx(result["instrumented_step_s"] / result["plain_step_s"])


def test_run_diagnoses_selects_then_finetunes_at_the_band(assets, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--model", str(assets / "m0"), "--data", str(assets / "toy.csv"), "--out", str(out),
                 "--candidates", "lora-inflection", "--epochs", "1", "--batch-size", "16", "probe_batch_size=8",
                 "probe_batches=1"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    band = results["diagnostics"]["inflection_layers"]
    assert results["strategy"] == "lora-inflection" and results["adapted_layers"] == band
    # Delta-CKA after training: blocks below the band are untouched by LoRA (the head is above all blocks)
    rows = results["diagnostics"]["layers"]
    assert all(abs(r["delta_cka"]) < 1e-9 for r in rows if r["layer"] < band[0])
    assert any(r["delta_cka"] > 0 for r in rows if r["layer"] >= band[0])
    assert len(results["diagnostics_after"]["layers"]) == 8
    assert "lora-inflection" in capsys.readouterr().out


def test_the_planned_run_always_diagnoses():
    from tunescope.experiments.plan import PlanConfig, chosen_config

    final = chosen_config(PlanConfig(), {"strategy": "lora", "settings": {"layers": [1, 2], "lora_rank": 4}})
    assert final.diagnose is True and final.strategy == "lora" and final.layers == [1, 2] and final.lora_rank == 4
