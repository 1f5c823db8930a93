"""Classification data sets: text + integer label, deterministic stratified splits, `--limit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset
from sklearn.model_selection import train_test_split

from tunescope.data.named import CLASSIFICATION_READERS
from tunescope.data.sources import pick_column, read_hub, read_local
from tunescope.errors import UserError

SPLITS = ("train", "validation", "test")


@dataclass
class ClassificationData:
    """Three splits with columns `text` (str) and `label` (int in 0..C-1); label_names[i] names class i."""

    name: str
    train: Dataset
    validation: Dataset
    test: Dataset
    label_names: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, s)) for s in SPLITS}

    def split(self, name: str) -> Dataset:
        return getattr(self, name)


def encode_labels(values: pd.Series, source: str) -> tuple[np.ndarray, list[str]]:
    """Map labels to 0..C-1. Integers keep their order; strings are sorted; anything else is refused."""
    if len(values) == 0:
        raise UserError(f"data {source!r} is empty: no rows with both a text and a label")
    if values.isna().any():
        values = values.dropna()
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(int)
    if pd.api.types.is_float_dtype(values):
        if not np.all(np.mod(values.to_numpy(), 1) == 0):
            bad = values[np.mod(values.to_numpy(), 1) != 0].iloc[0]
            raise UserError(f"label {bad!r} in {source!r} is neither an integer nor a string; labels must be "
                            "integers or strings (class names)")
        values = values.astype(int)
    if pd.api.types.is_integer_dtype(values):
        classes = sorted(values.unique().tolist())
        names = [str(c) for c in classes]
    elif values.map(lambda v: isinstance(v, str)).all():
        classes = sorted(values.unique().tolist())
        names = classes
    else:
        bad = values[~values.map(lambda v: isinstance(v, (str, int, np.integer)))].iloc[0]
        raise UserError(f"label {bad!r} ({type(bad).__name__}) in {source!r} is neither an integer nor a string; "
                        "labels must be integers or strings (class names)")
    if len(classes) < 2:
        raise UserError(f"data {source!r} has a single class ({names[0]!r}); classification needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    return values.map(index).to_numpy(dtype=np.int64), names


def _stratified_splits(df: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """80 / 10 / 10, stratified by label when every class has enough rows, seeded."""
    counts = df["label"].value_counts()
    strat = df["label"] if counts.min() >= 10 else None
    train, rest = train_test_split(df, test_size=0.2, random_state=seed, stratify=strat)
    strat_rest = rest["label"] if strat is not None else None
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strat_rest)
    return {"train": train, "validation": validation, "test": test}


def _frames(source: str, text_column: str | None, label_column: str | None) -> dict[str, pd.DataFrame] | pd.DataFrame:
    if source in CLASSIFICATION_READERS:
        if text_column not in (None, "text") or label_column not in (None, "label"):
            raise UserError(f"--text-column/--label-column do not apply to the named data set {source!r}")
        return CLASSIFICATION_READERS[source]()
    path = Path(source).expanduser()
    if path.is_file():
        return read_local(path)
    if path.is_dir():
        raise UserError(f"data {source!r} is a folder; pass a csv/tsv/jsonl/json/parquet file")
    return read_hub(source, sorted(CLASSIFICATION_READERS))


def _select(df: pd.DataFrame, text_column: str | None, label_column: str | None, source: str) -> pd.DataFrame:
    tcol = pick_column(df, text_column, ("text", "sentence", "review", "content"), "text", source)
    lcol = pick_column(df, label_column, ("label", "labels", "category", "sentiment"), "label", source)
    out = pd.DataFrame({"text": df[tcol], "label": df[lcol]}).dropna()
    out["text"] = out["text"].astype(str)
    return out[out["text"].str.strip().str.len() > 0]


def load_classification(source: str, *, text_column: str | None = None, label_column: str | None = None,
                        seed: int = 0, limit: int | None = None) -> ClassificationData:
    """Load a classification data set by name / path / hub id, with train/validation/test splits.

    Splits are deterministic for a given seed (stratified 80/10/10 unless the source has its own
    validation and test splits). `limit` caps the examples of each split (taken from the shuffled split).
    """
    if limit is not None and limit < 1:
        raise UserError(f"bad value {limit!r} for limit: expected a positive integer")
    frames = _frames(source, text_column, label_column)
    if isinstance(frames, pd.DataFrame):
        frames = _select(frames, text_column, label_column, source)
        codes, names = encode_labels(frames["label"], source)
        frames = frames.assign(label=codes)
        parts = _stratified_splits(frames, seed)
    else:  # hub: use its own splits; carve validation/test from train where missing
        parts = {k: _select(v, text_column, label_column, f"{source}[{k}]") for k, v in frames.items()}
        if "train" not in parts:
            raise UserError(f"dataset {source!r} has no train split; splits: {', '.join(parts)}")
        all_labels = pd.concat([p["label"] for p in parts.values()])
        _, names = encode_labels(all_labels, source)
        index = {n: i for i, n in enumerate(names)}
        for k in parts:
            parts[k] = parts[k].assign(label=parts[k]["label"].map(lambda v: index[str(v)]))
        # Hub test splits are often unlabelled (-1): those rows were dropped as NaN-mapped above.
        if "validation" not in parts or "test" not in parts:
            extra = _stratified_splits(parts["train"], seed)
            parts = {"train": extra["train"], "validation": parts.get("validation", extra["validation"]),
                     "test": parts.get("test", extra["test"])}
    splits = {}
    for name in SPLITS:
        df = parts[name].sample(frac=1.0, random_state=seed).reset_index(drop=True)
        if limit is not None:
            df = df.iloc[:limit]
        if len(df) == 0:
            raise UserError(f"data {source!r}: the {name} split is empty; give more rows")
        splits[name] = Dataset.from_pandas(df[["text", "label"]].astype({"label": "int64"}), preserve_index=False)
    return ClassificationData(name=source, label_names=names, **splits)
