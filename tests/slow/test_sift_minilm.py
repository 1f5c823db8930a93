"""Real assets: SIFT on minilm-l6 + rotten_tomatoes: exact sparse step, exact save -> load_classifier -> merge."""

import pytest
import torch

from tunescope.cli import main

pytestmark = pytest.mark.slow


def test_sift_minilm_step_save_and_reload_exactly(tmp_path):
    from tunescope.data import load_classification
    from tunescope.models.layers import head_parameter_names
    from tunescope.models.load import load_classifier
    from tunescope.strategies.sift import SiftAdamW, SiftConfig, SiftEngine, save_delta

    data = load_classification("rotten_tomatoes", seed=0, limit=16)
    model, tok = load_classifier("minilm-l6", 2)
    enc = tok(list(data.train["text"][:8]), padding=True, truncation=True, max_length=32, return_tensors="pt")
    batch = {**enc, "labels": torch.tensor(data.train["label"][:8])}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    engine = SiftEngine(model, SiftConfig(rate=0.01, extra={"model": "minilm-l6"}), head_parameter_names(model))
    assert len(engine.slots) == 24 and engine.selected_params == 24 * (int(0.01 * 384 * 384) + 1)
    engine.select([batch])
    opt = SiftAdamW(engine, lr=1e-3)
    model.eval()
    model(**batch).loss.backward()
    opt.step()
    changed = sum(int((p != before[n]).sum()) for n, p in model.named_parameters())
    assert 0 < changed <= engine.selected_params + engine.dense_params()
    with torch.no_grad():
        logits = model(**batch).logits
    save_delta(engine, tmp_path / "delta")
    tok.save_pretrained(tmp_path / "delta")
    reloaded, _ = load_classifier(str(tmp_path / "delta"), 2)
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, logits)


def test_sparsity_minilm(tmp_path):
    out = tmp_path / "sp"
    assert main(["sparsity", "--model", "minilm-l6", "--data", "rotten_tomatoes", "--limit", "40",
                 "--batch-size", "8", "--max-length", "32", "--out", str(out)]) == 0
    import json

    res = json.loads((out / "results.json").read_text())["sparsity"]
    assert res["num_params"] == 6 * (4 * 384 * 384 + 2 * 384 * 1536)  # q,k,v,o + FFN in / out per block
    assert 0.0 < res["overall"]["0.01"] < res["overall"]["0.1"] <= 1.0
