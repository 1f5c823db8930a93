"""Classification data loading: splits, labels, columns, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from tunescope.data import load_classification, load_corpus
from tunescope.data.classification import encode_labels
from tunescope.errors import UserError


def test_local_csv_splits_are_deterministic_and_disjoint(toy_csv):
    a = load_classification(str(toy_csv), seed=0)
    b = load_classification(str(toy_csv), seed=0)
    c = load_classification(str(toy_csv), seed=1)
    assert a.sizes() == {"train": 128, "validation": 16, "test": 16}
    assert a.train["text"] == b.train["text"] and a.train["text"] != c.train["text"]
    texts = [set(a.split(s)["text"]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    # stratified: both classes in every split, balanced in train
    assert sum(a.train["label"]) == 64 and set(a.test["label"]) == {0, 1}


def test_limit_caps_each_split(toy_csv):
    d = load_classification(str(toy_csv), limit=10)
    assert d.sizes() == {"train": 10, "validation": 10, "test": 10}


def test_string_labels_are_sorted_class_names(tmp_path):
    path = tmp_path / "d.jsonl"
    pd.DataFrame({"review": [f"t{i}" for i in range(40)], "y": ["pos", "neg"] * 20}).to_json(
        path, orient="records", lines=True)
    d = load_classification(str(path), text_column="review", label_column="y")
    assert d.label_names == ["neg", "pos"] and d.num_labels == 2


def test_encode_labels_rejects_fractional_and_single_class():
    with pytest.raises(UserError, match="neither an integer nor a string"):
        encode_labels(pd.Series([0.5, 1.0]), "x")
    with pytest.raises(UserError, match="single class"):
        encode_labels(pd.Series([1, 1, 1]), "x")
    with pytest.raises(UserError, match="empty"):
        encode_labels(pd.Series([], dtype=int), "x")


def test_missing_column_names_available(toy_csv):
    with pytest.raises(UserError, match="label column 'lable' not found.*columns: text, label.*Did you mean"):
        load_classification(str(toy_csv), label_column="lable")


def test_local_corpus_heldout_split(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(f"document number {i}" for i in range(40)))
    c = load_corpus(str(path), heldout_fraction=0.1)
    assert len(c.heldout) == 4 and len(c.train) == 36 and not set(c.heldout) & set(c.train)
