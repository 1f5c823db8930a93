"""Real assets: `tunescope diagnose` on minilm-l6 / rotten_tomatoes, and SDPA entropy vs eager on the real model."""

import json
import math

import pytest
import torch

from tunescope.cli import main

pytestmark = pytest.mark.slow


def test_diagnose_minilm_rotten_tomatoes(tmp_path):
    out = tmp_path / "diag"
    code = main(["diagnose", "--model", "minilm-l6", "--data", "rotten_tomatoes", "--limit", "32",
                 "--probe-batches", "1", "--probe-batch-size", "8", "--max-length", "48", "--out", str(out)])
    assert code == 0
    found = json.loads((out / "results.json").read_text())["diagnostics"]
    assert len(found["layers"]) == 6 and len(found["inflection_layers"]) == 2  # ceil(6/4)
    for row in found["layers"]:
        assert 0.0 < row["attn_entropy_norm"] < 1.0  # a trained model: neither uniform nor one-hot
        assert math.isfinite(row["act_grad_norm"]) and row["param_grad_norm"] > 0


def test_minilm_entropy_matches_eager_attention():
    from tunescope.diagnostics.attention import (
        EntropyRecorder,
        masked_attention_entropy,
        record_attention_entropy,
    )
    from tunescope.models.layers import model_layout
    from tunescope.models.load import load_classifier

    model, tok = load_classifier("minilm-l6", num_labels=2)
    model.eval()
    enc = tok(["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés from start to "
               "finish, and the acting is flat."], padding=True, return_tensors="pt")
    layout = model_layout(model)
    rec = EntropyRecorder(layout.num_layers, valid_tokens=enc["attention_mask"].bool())
    with torch.no_grad(), record_attention_entropy(model, layout.attentions, rec):
        model(**enc)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attentions = model(**enc, output_attentions=True).attentions
    valid = enc["attention_mask"].bool()
    for row, a in zip(rec.table(), attentions):
        s, n, _, _ = masked_attention_entropy(a, valid[:, None, None, :].expand_as(a), valid)
        assert row["attn_entropy"] == pytest.approx(float(s / n), abs=1e-5)
