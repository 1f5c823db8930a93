"""`tunescope jump` end to end on tiny saved models (encoder + decoders) and on a pretrain run directory."""

from __future__ import annotations

import json

import pytest

from tunescope.cli import main
from tunescope.diagnostics.jump import jump_profile, zeta_profile
from tunescope.experiments.jump import text_batches
from tunescope.models.load import load_encoder_or_lm


def test_jump_compares_models_and_matches_the_library(tmp_path, tiny_model_dir, toy_csv, capsys):
    out = tmp_path / "run"
    code = main(["jump", "--model", str(tiny_model_dir["bert"]), "--model", str(tiny_model_dir["llama"]),
                 "--data", str(toy_csv), "--limit", "6", "--max-length", "24", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "zeta_L" in printed and "report:" in printed
    res = json.loads((out / "results.json").read_text())
    models = res["jump"]["models"]
    assert [m["family"] for m in models] == ["encoder", "decoder"]
    assert res["jump"]["psi"] == models[0]["psi"]
    for m in models:
        assert len(m["psi"]) == m["layers"] == 4
        assert all(0.0 <= p <= 1.0 for p in m["psi"])
        assert m["zeta"] == pytest.approx(zeta_profile(m["psi"]))
    assert (out / "jump_profile.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "Final-layer jump" in html and "data:image/png;base64" in html
    # The CLI's numbers are the library's numbers on the same texts.
    from tunescope.data.corpus import load_corpus

    texts = load_corpus(str(toy_csv), seed=0).heldout[:6]
    model, tok = load_encoder_or_lm(str(tiny_model_dir["llama"]))
    direct = jump_profile(model, text_batches(tok, texts, 24, 8))
    assert models[1]["psi"] == pytest.approx(direct.psi, rel=1e-6)
    assert models[1]["tokens"] == direct.tokens


def test_jump_rejects_a_missing_model(tmp_path, toy_csv, capsys):
    code = main(["jump", "--model", str(tmp_path / "nope"), "--data", str(toy_csv), "--out", str(tmp_path / "r")])
    assert code == 2
    assert "nope" in capsys.readouterr().err
