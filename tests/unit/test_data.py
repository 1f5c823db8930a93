"""Classification data loading: splits, labels, columns, bad input."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tunescope.data import load_classification, load_corpus
from tunescope.data.classification import (
    MIN_ROWS,
    _stratified_splits,
    encode_labels,
    split_sizes,
)
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


# --- bad input: each case is a UserError whose one-line message names the value and what is accepted ---------


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_split_sizes_match_the_real_split():
    for n in range(MIN_ROWS, 60):
        df = pd.DataFrame({"text": [f"t{i}" for i in range(n)], "label": [i % 2 for i in range(n)]})
        parts = _stratified_splits(df, seed=0)
        assert {k: len(v) for k, v in parts.items()} == split_sizes(n), n
    assert MIN_ROWS == 6 and min(split_sizes(MIN_ROWS - 1).values()) == 0


def test_too_few_rows_says_how_many_are_needed(tmp_path):
    path = tmp_path / "three.csv"
    pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 1, 0]}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"has 3 usable rows .* needs at least 6 rows"):
        load_classification(str(path))
    pd.DataFrame({"text": list("abcdef"), "label": [0, 1] * 3}).to_csv(path, index=False)
    assert load_classification(str(path)).sizes() == {"train": 4, "validation": 1, "test": 1}


def test_rows_without_text_do_not_count_towards_the_minimum(tmp_path):
    path = tmp_path / "blanks.csv"
    pd.DataFrame({"text": ["a", "", " ", "b", None, "c"], "label": [0, 1, 0, 1, 0, 1]}).to_csv(path, index=False)
    with pytest.raises(UserError, match="has 3 usable rows"):
        load_classification(str(path))


def test_tiny_unstratified_split_with_a_one_class_train_split_is_refused(tmp_path):
    path = _write_jsonl(tmp_path / "imb.jsonl", [{"text": f"t{i}", "label": "a" if i else "b"} for i in range(8)])
    assert load_classification(path, seed=0).num_labels == 2
    with pytest.raises(UserError, match="with seed 6 its train split of 6 rows holds the single class 'a'; give at "
                                        "least 10 rows of each class"):
        load_classification(path, seed=6)


@pytest.mark.parametrize("labels,fragment", [
    ([0, "pos"], "mix integers and strings, e.g. 0 and 'pos'"),
    ([1.0, "neg"], "mix integers and strings, e.g. 1.0 and 'neg'"),
    ([True, 0, "x"], "mix booleans, integers and strings, e.g. True, 0 and 'x'"),
])
def test_labels_mixing_kinds_in_json(tmp_path, labels, fragment):
    path = _write_jsonl(tmp_path / "mixed.jsonl", [{"text": f"t{i}", "label": labels[i % len(labels)]}
                                                   for i in range(30)])
    with pytest.raises(UserError, match=re.escape(fragment) + ".*integers or strings .*all of the same kind"):
        load_classification(path)


def test_labels_mixing_integers_and_names_in_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": ["0", "1", "pos"] * 10}).to_csv(path, index=False)
    with pytest.raises(UserError, match="mix integers and strings, e.g. '0' and 'pos'"):
        load_classification(str(path))


def test_integer_like_string_labels_alone_are_class_names(tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", [{"text": f"t{i}", "label": ["1", "2"][i % 2]} for i in range(30)])
    assert load_classification(path).label_names == ["1", "2"]


def test_whole_float_labels_next_to_ints_are_integers(tmp_path):
    path = _write_jsonl(tmp_path / "f.jsonl", [{"text": f"t{i}", "label": [0, 1.0][i % 2]} for i in range(30)])
    assert load_classification(path).label_names == ["0", "1"]


@pytest.mark.parametrize("label,kind", [([0, 1], "list"), ({"y": 1}, "dict")])
def test_non_scalar_labels(tmp_path, label, kind):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(30)]
    rows[4]["label"] = label
    path = _write_jsonl(tmp_path / "nested.jsonl", rows)
    with pytest.raises(UserError, match=f"label column 'label' of .* holds a {kind} in row 5 .*integers or strings"):
        load_classification(path)


def test_non_scalar_texts(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"text": [f"t{i}"], "label": i % 2} for i in range(30)])
    with pytest.raises(UserError, match=r"text column 'text' of .* holds a list in row 1 \(\['t0'\]\); texts must be "
                                        "strings"):
        load_classification(path)


@pytest.mark.parametrize("text", ["", "   ", None])
def test_all_texts_empty(tmp_path, text):
    path = _write_jsonl(tmp_path / "e.jsonl", [{"text": text, "label": i % 2} for i in range(30)])
    with pytest.raises(UserError, match="text column 'text' of .* is empty: all 30 rows have a missing or blank "
                                        "text; pass --text-column"):
        load_classification(path)


def test_all_labels_missing(tmp_path):
    path = _write_jsonl(tmp_path / "n.jsonl", [{"text": f"t{i}", "label": None} for i in range(30)])
    with pytest.raises(UserError, match="label column 'label' of .* is empty: none of its 30 rows has a label"):
        load_classification(path)


@pytest.mark.parametrize("content,fragment", [
    ("", "is empty (0 bytes)"),
    ("\n\n", "holds no table (only blank lines)"),
    ("text,label\n", "is empty: it has no rows (columns: text, label)"),
])
def test_empty_files(tmp_path, content, fragment):
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(fragment)):
        load_classification(str(path))


def test_single_class_names_the_class(tmp_path):
    path = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": ["pos"] * 30}).to_csv(path, index=False)
    with pytest.raises(UserError, match="single class \\('pos'\\) in all 30 labelled rows; classification needs at "
                                        "least 2 classes"):
        load_classification(str(path))


def _serve_hub(monkeypatch, frames: dict) -> None:
    """Make every hub id load `frames` ({split: DataFrame}) as datasets.Dataset splits (no network)."""
    import datasets

    from tunescope.data import classification
    from tunescope.data.hub import parse_source

    splits = {k: datasets.Dataset.from_pandas(v, preserve_index=False) for k, v in frames.items()}
    monkeypatch.setattr(classification, "load_splits", lambda name, named: (parse_source(name), splits))


def test_hub_splits_share_one_encoding_and_unlabelled_test_is_carved(monkeypatch):
    """A hub data set whose test split is unlabelled (-1 everywhere, the datasets convention)."""
    train = pd.DataFrame({"sentence": [f"t{i}" for i in range(200)], "label": [i % 2 for i in range(200)]})
    validation = pd.DataFrame({"sentence": [f"v{i}" for i in range(20)], "label": [1] * 10 + [0] * 10})
    test = pd.DataFrame({"sentence": [f"x{i}" for i in range(20)], "label": [-1] * 20})
    _serve_hub(monkeypatch, {"train": train, "validation": validation, "test": test})
    d = load_classification("someone/sst-like")
    assert d.label_names == ["0", "1"] and d.sizes() == {"train": 160, "validation": 20, "test": 20}
    assert all(t.startswith("v") for t in d.validation["text"]) and sum(d.validation["label"]) == 10
    assert all(t.startswith("t") for t in d.test["text"]) and sorted(set(d.test["label"])) == [0, 1]


def test_hub_mixed_labels_are_refused(monkeypatch):
    # An Arrow column has one type: a csv-like string column with '0' next to 'x' is the mix a hub set can hold.
    _serve_hub(monkeypatch, {"train": pd.DataFrame({"text": ["a", "b"] * 10, "label": ["0", "x"] * 10})})
    with pytest.raises(UserError, match="mix integers and strings"):
        load_classification("someone/mixed")


def test_corpus_refuses_non_string_documents_and_too_few(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", [{"text": {"title": "t"}}, {"text": "doc"}])
    with pytest.raises(UserError, match="text column 'text' of .* holds a dict in row 1"):
        load_corpus(str(path))
    path = tmp_path / "one.txt"
    path.write_text("only one document\n\n")
    with pytest.raises(UserError, match="has 1 non-empty documents in column 'text'; need at least 2"):
        load_corpus(str(path))
