"""`tunescope finetune --strategy sift` and `tunescope sparsity` end to end on tiny saved models."""

from __future__ import annotations

import json

from tunescope.cli import main
from tunescope.models.load import load_classifier
from tunescope.strategies.sift.state import load_delta


def test_finetune_sift_flags_results_and_checkpoint(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "sift"
    code = main(["finetune", "--strategy", "sift", "--model", str(tiny_model_dir["llama"]), "--data", str(toy_csv),
                 "--sift-rate", "0.1", "--sift-targets", "q_proj,v_proj", "--sift-selection-batches", "2",
                 "--epochs", "1", "--batch-size", "16", "--lr", "1e-2", "--max-length", "24", "--limit", "48",
                 "--out", str(out), "feature_change=false"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    sift = res["sift"]
    base, _ = load_classifier(str(tiny_model_dir["llama"]), 2)
    targets = [n for n, _ in base.named_parameters() if n.endswith(("q_proj.weight", "v_proj.weight"))]
    k = sum(int(0.1 * base.get_parameter(n).numel()) + 1 for n in targets)
    head = base.score.weight.numel()
    assert sift["rate"] == 0.1 and sift["selection_batches"] == 2 and sift["targets"] == len(targets)
    assert sift["selected_params"] == k and res["trainable_params"] == k + head
    assert 0 < sift["grad_topk_share"] <= 1
    # state: AdamW moments (2 x 4 bytes) for k + head entries, the fp32 base (4 per entry) and the packed indices:
    # per tensor int16 offsets + int32 pointers per 32,768-entry block, or int32 [k] if fewer bytes
    packed = 0
    for n in targets:
        numel = base.get_parameter(n).numel()
        k_n = int(0.1 * numel) + 1
        packed += min(2 * k_n + 4 * (-(-numel // 32768) + 1), 4 * k_n)
    assert sift["optimizer_state_bytes"] == 8 * (k + head) + 4 * k + packed
    delta = load_delta(out / "checkpoints" / "final")
    assert set(delta.sparse) == set(targets)
    assert "SIFT" in (out / "report.html").read_text()


def test_finetune_sift_random_mask_and_bad_values(tiny_model_dir, toy_csv, tmp_path, capsys):
    common = ["finetune", "--strategy", "sift", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv),
              "--epochs", "1", "--batch-size", "32", "--max-length", "24", "--limit", "32"]
    assert main(common + ["--sift-mask", "bottom", "--out", str(tmp_path / "a")]) == 2
    assert "sift_mask" in capsys.readouterr().err
    assert main(common + ["--sift-rate", "2", "--out", str(tmp_path / "b")]) == 2
    assert main(common + ["--sift-targets", "nothing_like_this", "--out", str(tmp_path / "c")]) == 2
    assert main(common + ["--sift-mask", "random", "--out", str(tmp_path / "d"), "feature_change=false"]) == 0
    res = json.loads((tmp_path / "d" / "results.json").read_text())
    assert res["sift"]["mask"] == "random"


def test_sparsity_command(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "sp"
    code = main(["sparsity", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--batch-size", "16",
                 "--max-length", "24", "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())["sparsity"]
    shares = [res["overall"][str(p)] for p in res["fractions"]]
    assert res["fractions"] == [0.001, 0.01, 0.05, 0.1] and shares == sorted(shares) and 0 < shares[-1] <= 1
    assert 0 < res["entries_for_99"] <= 1 and res["attention_qkvo"]["num_params"] < res["num_params"]
    model, _ = load_classifier(str(tiny_model_dir["bert"]), 2)
    n_block_weights = sum(p.numel() for n, p in model.named_parameters() if ".layer." in n and p.dim() == 2)
    assert res["num_params"] == n_block_weights
    assert "quasi-sparsity" in capsys.readouterr().out
    assert "Gradient quasi-sparsity" in (out / "report.html").read_text()
    assert main(["sparsity", "--fractions", "0,2", "--out", str(tmp_path / "bad")]) == 2
