"""Real assets: `tunescope landscape` on minilm-l6 + rotten_tomatoes, a few evaluations, weights untouched."""

from __future__ import annotations

import json

import pytest
import torch

from tunescope.cli import main


@pytest.mark.slow
def test_landscape_on_minilm_layer_scope(tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path / "ls"
    # A freshly initialised head is near chance, so the radius may be large; the test checks the plumbing.
    code = main(["landscape", "--model", "minilm-l6", "--data", "rotten_tomatoes", "--limit", "64",
                 "--max-length", "24", "--eval-examples", "32", "--num-directions", "1", "--scope", "layers:5-5",
                 "--curve-points", "0", "--tau", "0.1", "--a-init", "0.05", "--out", str(out)])
    torch.set_num_threads(threads)
    assert code == 0
    basin = json.loads((out / "results.json").read_text())["basin"]
    assert basin["scope"] == "layers:5-5" and 1_000_000 < basin["dim"] < 2_000_000  # one MiniLM block ~1.8M
    r = basin["random"]
    assert r["radii"][0] >= 0 and r["evaluations"] >= 2
    assert "median radius" in capsys.readouterr().out
