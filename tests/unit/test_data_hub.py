"""Data through `datasets` (data/hub.py): save_to_disk folders, loading-script-free folders with a README that
declares configs and ClassLabel features, `ID[:CONFIG[:SPLIT]]`, and one-line errors for what cannot load.

Everything is local (HF_HUB_OFFLINE=1 from conftest): a local folder goes through the same
`datasets.load_dataset(path, config, split=...)` call as a hub id.
"""

from __future__ import annotations

import json

import datasets
import pandas as pd
import pytest

from tunescope.cli import main
from tunescope.data import load_classification, load_corpus
from tunescope.data.classification import class_label_codes, split_sizes
from tunescope.data.hub import DatasetsSource, parse_source
from tunescope.errors import UserError

NAMES = ["neg", "pos"]
FEATURES = datasets.Features({"sentence": datasets.Value("string"), "idx": datasets.Value("int32"),
                              "label": datasets.ClassLabel(names=NAMES)})


def _split(prefix: str, n: int, labels=None) -> datasets.Dataset:
    labels = labels if labels is not None else [i % 2 for i in range(n)]
    return datasets.Dataset.from_dict({"sentence": [f"{prefix} {i}" for i in range(n)], "idx": list(range(n)),
                                       "label": labels}, features=FEATURES)


@pytest.fixture(scope="module")
def configs_folder(tmp_path_factory):
    """A folder `datasets.load_dataset` reads like a hub repository: two configs in its README.md, config `a`
    with a 3-class ClassLabel (`high` absent from the data), config `b` with plain integer labels."""
    root = tmp_path_factory.mktemp("configs")
    for config, classes in (("a", 2), ("b", 2)):
        (root / config).mkdir()
        rows = [{"text": f"{config} doc {i}", "label": i % classes} for i in range(40)]
        (root / config / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "README.md").write_text("""---
configs:
- config_name: a
  data_files:
  - split: train
    path: a/*.jsonl
- config_name: b
  data_files:
  - split: train
    path: b/*.jsonl
dataset_info:
- config_name: a
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': low
          '1': mid
          '2': high
---
""")
    return root


def test_parse_source_reads_id_config_and_split():
    assert parse_source("stanfordnlp/sst2") == DatasetsSource("stanfordnlp/sst2")
    assert parse_source("nyu-mll/glue:sst2") == DatasetsSource("nyu-mll/glue", "sst2")
    assert parse_source("stanfordnlp/imdb::test") == DatasetsSource("stanfordnlp/imdb", None, "test")
    # the split keeps datasets' own slice syntax, colons included
    assert parse_source("nyu-mll/glue:sst2:train[:10%]") == DatasetsSource("nyu-mll/glue", "sst2", "train[:10%]")


def test_saved_dataset_dict_keeps_splits_and_class_label_names(tmp_path):
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": _split("tr", 60), "validation": _split("va", 10),
                          "test": _split("te", 12, labels=[1] * 12)}).save_to_disk(str(folder))
    d = load_classification(str(folder))
    assert d.label_names == NAMES  # from the ClassLabel feature, not "0" / "1"
    assert d.sizes() == {"train": 60, "validation": 10, "test": 12}
    assert set(d.test["label"]) == {1} and all(t.startswith("te ") for t in d.test["text"])
    # a saved split picked with FOLDER::SPLIT is one table, split 80/10/10
    one = load_classification(f"{folder}::train")
    assert one.sizes() == split_sizes(60) and one.label_names == NAMES
    with pytest.raises(UserError, match="unknown split 'trian' of .*; splits: train, validation, test. Did you mean "
                                        "'train'"):
        load_classification(f"{folder}::trian")


def test_saved_single_dataset_drops_unlabelled_rows_and_refuses_bad_codes(tmp_path):
    folder = tmp_path / "single"
    labels = [-1] * 10 + [i % 2 for i in range(50)]  # -1: the datasets convention for "no label"
    _split("s", 60, labels=labels).save_to_disk(str(folder))
    d = load_classification(str(folder))
    assert sum(d.sizes().values()) == 50 and d.label_names == NAMES
    assert all(int(t.split()[-1]) >= 10 for s in ("train", "validation", "test") for t in d.split(s)["text"])
    with pytest.raises(UserError, match="label 2 in 'src' is outside its ClassLabel names \\['a', 'b'\\]"):
        class_label_codes(pd.Series([0, 2, 1]), ["a", "b"], "src")
    with pytest.raises(UserError, match="single class \\('b'\\) in all 3 labelled rows"):
        class_label_codes(pd.Series([1, 1, 1]), ["a", "b"], "src")


def test_config_and_split_go_to_load_dataset(configs_folder):
    a = load_classification(f"{configs_folder}:a")
    assert a.label_names == ["low", "mid", "high"] and a.num_labels == 3  # an absent class keeps its index
    assert sum(a.sizes().values()) == 40 and set(a.train["label"]) == {0, 1}
    b = load_classification(f"{configs_folder}:b:train[:50%]")  # datasets' split syntax: the first 20 rows
    assert b.label_names == ["0", "1"] and b.sizes() == split_sizes(20)
    assert {int(t.split()[-1]) for s in ("train", "validation", "test") for t in b.split(s)["text"]} == set(range(20))
    with pytest.raises(UserError, match="could not be read by datasets.load_dataset \\(BuilderConfig 'zz' not found. "
                                        "Available: \\['a', 'b'\\]\\)"):
        load_classification(f"{configs_folder}:zz")


def test_only_the_text_and_label_columns_are_converted(tmp_path, monkeypatch):
    folder = tmp_path / "wide"
    datasets.DatasetDict({"train": _split("tr", 40)}).save_to_disk(str(folder))
    converted = []
    to_pandas = datasets.Dataset.to_pandas
    monkeypatch.setattr(datasets.Dataset, "to_pandas",
                        lambda self, *a, **k: converted.append(self.column_names) or to_pandas(self, *a, **k))
    load_classification(str(folder))
    load_corpus(str(folder), text_column="sentence")
    assert converted == [["sentence", "label"], ["sentence"]]  # never the `idx` column


def test_parquet_folder_keeps_class_label_names_and_corpus_reads_a_split(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    _split("tr", 40).to_parquet(str(folder / "train.parquet"))  # the features travel in the parquet metadata
    _split("te", 10).to_parquet(str(folder / "test.parquet"))
    d = load_classification(str(folder))
    assert d.label_names == NAMES and d.sizes()["test"] == 10
    corpus = load_corpus(f"{folder}::test", text_column="sentence", heldout_fraction=0.2)
    assert sorted(corpus.train + corpus.heldout) == sorted(f"te {i}" for i in range(10))


def test_unreachable_hub_id_is_one_line_exit_2(tmp_path, capsys, tiny_model_dir):
    code = main(["finetune", "--model", str(tiny_model_dir["bert"]), "--data", "someone/not-here:cfg:train",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert ("unknown dataset 'someone/not-here:cfg:train': not a named asset (rotten_tomatoes, tweets_sentiment), "
            "not a local file, and the hub could not load it through datasets.load_dataset (Couldn't reach "
            "'someone/not-here' on the Hub (OfflineModeIsEnabled))") in err
