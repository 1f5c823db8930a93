"""End to end through main([...]): GO fine-tuning, then `tunescope landscape` on the run directory."""

from __future__ import annotations

import hashlib
import json

import pytest

from tunescope.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def go_run(tiny_model_dir, toy_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("go") / "run"
    code = main(["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--out", str(out),
                 "--strategy", "full", "--epochs", "3", "--lr", "3e-3", "--noise-sigma", "0.01", "--batch-size", "16"])
    assert code == 0
    return out


def test_go_training_records_one_draw_per_optimizer_step(go_run):
    results = json.loads((go_run / "results.json").read_text())
    go = results["go"]
    assert go["noise_sigma"] == 0.01 and go["noisy_params"] == results["trainable_params"]
    steps = max(json.loads(line)["step"] for line in (go_run / "metrics.jsonl").read_text().splitlines())
    assert go["draws"] == steps > 0


def test_landscape_on_a_run_directory(go_run, tmp_path, capsys):
    before = _digest(go_run / "checkpoints" / "final")
    out = tmp_path / "ls"
    code = main(["landscape", "--model", str(go_run), "--directions", "random,worst,sft", "--num-directions", "3",
                 "--eval-examples", "32", "--curve-points", "7", "--certify-sigma", "0.001", "--certify-draws", "8",
                 "--worst-steps", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "median radius" in printed and "certified radius" in printed and "report:" in printed
    basin = json.loads((out / "results.json").read_text())["basin"]
    assert basin["direction_types"] == ["random", "worst", "sft"]
    assert len(basin["random"]["radii"]) == 3 and len(basin["worst"]["radii"]) == 1
    for kind in ("random", "worst", "sft"):
        b = basin[kind]
        for key in ("radii", "median_radius", "evaluations", "cp_lower_bound"):
            assert key in b, (kind, key)
        assert b["evaluations"] == pytest.approx(b["evaluations_per_direction"] * len(b["radii"]))
        assert all(r == min(p, n) for r, p, n in zip(b["radii"], b["radii_positive"], b["radii_negative"]))
        assert 0.0 <= b["cp_lower_bound"] <= b["fraction_inside"] <= 1.0
    assert basin["sft"]["base_scale"] < 0
    assert basin["certified_radius"] == basin["certificate"]["radius"] >= 0
    assert set(basin["curves"]) == {"random", "worst", "sft"} and len(basin["curves"]["random"]["grid"]) == 7
    assert basin["curves"]["random"]["scores"][0][3] == pytest.approx(basin["score"])  # a = 0 is theta itself
    assert "Loss-landscape basins" in (out / "report.html").read_text()
    assert _digest(go_run / "checkpoints" / "final") == before


def test_lora_run_adapters_scope(tiny_model_dir, toy_csv, tmp_path):
    run = tmp_path / "lora"
    assert main(["finetune", "--model", str(tiny_model_dir["llama"]), "--data", str(toy_csv), "--out", str(run),
                 "--strategy", "lora", "--epochs", "1", "--lr", "1e-2"]) == 0
    out = tmp_path / "ls"
    assert main(["landscape", "--model", str(run), "--scope", "adapters", "--num-directions", "2",
                 "--eval-examples", "32", "--curve-points", "0", "--out", str(out)]) == 0
    basin = json.loads((out / "results.json").read_text())["basin"]
    assert basin["scope"] == "adapters" and 0 < basin["dim"] < 20_000


@pytest.mark.parametrize("extra,needle", [
    (["--directions", "random,bogus"], "directions"),
    (["--scope", "layers:7-9"], "layers:7-9"),
    (["--directions", "sft"], "--base"),
    (["--tau", "-1"], "tau"),
])
def test_bad_input_exits_2_with_one_line(tiny_model_dir, toy_csv, tmp_path, capsys, extra, needle):
    code = main(["landscape", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--eval-examples", "16",
                 "--num-directions", "1", "--curve-points", "0", "--out", str(tmp_path / "bad"), *extra])
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # earlier stderr lines are loading progress bars
    assert code == 2 and last.startswith("tunescope: error:") and needle in last and "Traceback" not in err


def test_landscape_on_a_causal_lm_scores_next_token_accuracy(tokenizer, toy_csv, tmp_path, capsys):
    from tunescope.models.tiny import tiny_causal_lm

    folder = tmp_path / "lm"
    tiny_causal_lm("llama", tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    before = _digest(folder)
    out = tmp_path / "ls"
    code = main(["landscape", "--model", str(folder), "--data", str(toy_csv), "--directions", "random,worst",
                 "--num-directions", "2", "--eval-examples", "8", "--max-length", "16", "--curve-points", "0",
                 "--worst-steps", "2", "--out", str(out), "tau=0.5", "relative=true"])  # untrained: S ~ 0.02
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    basin = results["basin"]
    assert results["score_kind"] == "causal-lm" and 0.0 < basin["score"] <= 1.0
    assert len(basin["random"]["radii"]) == 2 and basin["worst"]["median_radius"] <= max(basin["random"]["radii"])
    assert _digest(folder) == before


def test_sift_run_sparse_scope_moves_only_the_trained_entries(tiny_model_dir, toy_csv, tmp_path):
    run = tmp_path / "sift"
    assert main(["finetune", "--strategy", "sift", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv),
                 "--sift-rate", "0.05", "--epochs", "1", "--batch-size", "16", "--lr", "1e-2", "--max-length", "24",
                 "--limit", "48", "--out", str(run), "feature_change=false"]) == 0
    out = tmp_path / "ls"
    assert main(["landscape", "--model", str(run), "--scope", "sparse", "--num-directions", "2",
                 "--eval-examples", "16", "--curve-points", "0", "--out", str(out)]) == 0
    selected = json.loads((run / "results.json").read_text())["sift"]["selected_params"]
    assert json.loads((out / "results.json").read_text())["basin"]["dim"] == selected
