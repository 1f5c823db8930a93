"""Slow tier: the real minilm-l6 on the real rotten_tomatoes, small --limit (still run in CI)."""

from __future__ import annotations

import json

import pytest

from tunescope.cli import main
from tunescope.data import load_classification

pytestmark = pytest.mark.slow


def test_rotten_tomatoes_asset_splits():
    d = load_classification("rotten_tomatoes")
    sizes = d.sizes()
    total = sum(sizes.values())
    assert 12_000 < total < 12_900  # 12,808 fresh + rotten rows minus duplicates
    assert abs(sizes["train"] / total - 0.8) < 0.01 and abs(sizes["test"] / total - 0.1) < 0.01
    assert d.label_names == ["rotten", "fresh"]  # label 1 = fresh
    share = sum(d.train["label"]) / sizes["train"]
    assert abs(share - sum(d.test["label"]) / sizes["test"]) < 0.02  # stratified


def test_tweets_sentiment_is_binary():
    d = load_classification("tweets_sentiment", limit=50)
    assert d.num_labels == 2 and set(d.train["label"]) == {0, 1}


def test_finetune_minilm_on_rotten_tomatoes(tmp_path):
    out = tmp_path / "run"
    assert main(["finetune", "--strategy", "lora", "--limit", "96", "--epochs", "1", "--max-length", "32",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "minilm-l6" and results["total_params"] > 22_000_000
    assert results["data_sizes"] == {"train": 96, "validation": 96, "test": 96}
    assert (out / "report.html").is_file()
