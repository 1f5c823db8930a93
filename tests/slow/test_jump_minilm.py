"""Real assets: `tunescope jump` on minilm-l6 / news_text, checked against HF's hidden states."""

import json

import pytest
import torch

from tunescope.cli import main

pytestmark = pytest.mark.slow


def test_jump_minilm_news_text_matches_hidden_states(tmp_path):
    out = tmp_path / "jump"
    assert main(["jump", "--model", "minilm-l6", "--data", "news_text", "--limit", "3", "--max-length", "32",
                 "--out", str(out)]) == 0
    jump = json.loads((out / "results.json").read_text())["jump"]
    assert len(jump["psi"]) == 6 and all(0.0 < p < 1.0 for p in jump["psi"])

    # Independent computation: BERT applies no final norm, so HF's hidden_states are exactly h_0..h_L.
    from tunescope.data.corpus import load_corpus
    from tunescope.models.load import load_encoder_or_lm

    model, tok = load_encoder_or_lm("minilm-l6")
    texts = load_corpus("news_text", seed=0).heldout[:3]
    enc = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    mask = enc["attention_mask"].bool()
    expected = []
    for prev, cur in zip(states[:-1], states[1:]):
        psi = (1 - torch.nn.functional.cosine_similarity(prev, cur, dim=-1)) / 2
        expected.append(float(psi[mask].mean()))
    assert jump["psi"] == pytest.approx(expected, rel=1e-4)
    assert jump["tokens"] == int(mask.sum())
