"""Classification data sets: text + integer label, deterministic stratified splits, `--limit`.

Bad input (too few rows, mixed or non-scalar labels, empty texts, a single class) is refused with a
UserError naming the value and what is accepted, before any model is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import Dataset
from sklearn.model_selection import train_test_split

from tunescope.data.hub import class_names, column_names, load_splits, to_frame
from tunescope.data.named import CLASSIFICATION_READERS, LABEL_NAMES
from tunescope.data.sources import (
    choose_column,
    pick_column,
    read_local,
    refuse_non_scalar,
    show_value,
)
from tunescope.errors import UserError

SPLITS = ("train", "validation", "test")
HELDOUT_FRACTION = 0.2  # validation + test, carved from the data in one seeded split, then halved
STRATIFY_MIN_PER_CLASS = 10  # below this many rows in some class the split is not stratified
LABEL_HINT = "labels must be integers or strings (class names), one per row, all of the same kind"
TEXT_COLUMNS = ("text", "sentence", "review", "content")  # looked for, in order, when --text-column is not given
LABEL_COLUMNS = ("label", "labels", "category", "sentiment")
UNLABELLED = -1  # the datasets convention for a row without a label (e.g. GLUE test splits)


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


def split_sizes(n: int) -> dict[str, int]:
    """Rows per split that `_stratified_splits` gives `n` rows (sklearn rounds a test fraction up)."""
    heldout = math.ceil(HELDOUT_FRACTION * n)
    test = math.ceil(0.5 * heldout)
    return {"train": n - heldout, "validation": heldout - test, "test": test}


def min_rows_for_split() -> int:
    """The fewest rows for which every split of the 80/10/10 split gets at least one row."""
    n = 1
    while min(split_sizes(n).values()) < 1:
        n += 1
    return n


MIN_ROWS = min_rows_for_split()


def _label_kind(value: Any) -> str:
    """'bool', 'int', 'str', 'fraction' (a float with a fractional part), 'non-scalar' or 'other'."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (float, np.floating)):
        # JSON readers give 1.0 for 1 next to strings; a whole float is an integer label.
        return "int" if float(value).is_integer() else "fraction"
    return "other" if pd.api.types.is_scalar(value) else "non-scalar"


KIND_WORDS = {"bool": "booleans", "int": "integers", "str": "strings"}
INTEGER_TEXT = r"\s*[+-]?\d+\s*"  # a string label that reads as an integer, e.g. '1' from a csv file


def _and_join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _mixed_kinds_error(values: pd.Series, kinds: pd.Series, source: str) -> UserError:
    """The error for a label column that holds more than one kind of value (e.g. 0 and 'pos')."""
    present = sorted(set(kinds))
    words = _and_join([KIND_WORDS.get(k, k) for k in present])
    examples = _and_join([show_value(values[kinds == k].iloc[0]) for k in present])
    return UserError(f"labels in {source!r} mix {words}, e.g. {examples}; {LABEL_HINT}")


def _object_labels_to_kind(values: pd.Series, source: str) -> tuple[str, pd.Series]:
    """The one kind ('int' or 'str') of an object-dtype label column, with its values converted to it."""
    kinds = values.map(_label_kind)
    for bad_kind in ("non-scalar", "fraction", "other"):
        if (kinds == bad_kind).any():
            bad = values[kinds == bad_kind].iloc[0]
            raise UserError(f"label {show_value(bad)} ({type(bad).__name__}) in {source!r} is neither an integer nor a "
                            f"string; {LABEL_HINT}")
    if kinds.nunique() > 1:
        raise _mixed_kinds_error(values, kinds, source)
    if kinds.iloc[0] != "str":
        return "int", values.map(int)  # ints, whole floats or bools: one integer class index each
    # A csv/tsv file has no types: '0', '1' next to 'pos' is the same mix as 0, 1 next to 'pos' in JSON.
    integer_text = values.str.fullmatch(INTEGER_TEXT)
    if integer_text.any() and not integer_text.all():
        raise _mixed_kinds_error(values, integer_text.map({True: "int", False: "str"}), source)
    return "str", values


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
            raise UserError(f"label {show_value(bad)} in {source!r} is neither an integer nor a string; "
                            f"{LABEL_HINT}")
        values = values.astype(int)
    if pd.api.types.is_integer_dtype(values):
        kind = "int"
    else:
        kind, values = _object_labels_to_kind(values, source)
    classes = sorted(values.unique().tolist())
    names = [str(c) for c in classes] if kind == "int" else classes
    if len(classes) < 2:
        raise UserError(f"data {source!r} has a single class ({names[0]!r}) in all {len(values)} labelled rows; "
                        "classification needs at least 2 classes")
    index = {c: i for i, c in enumerate(classes)}
    return values.map(index).to_numpy(dtype=np.int64), names


def class_label_codes(values: pd.Series, names: list[str], source: str) -> np.ndarray:
    """The codes of a ClassLabel column as they are: label i is names[i] (the data set's own order, kept even
    for classes absent from these rows); at least 2 classes must be present."""
    codes = values.to_numpy(dtype=np.int64)
    if len(codes) == 0:
        raise UserError(f"data {source!r} is empty: no rows with both a text and a label")
    outside = [c for c in sorted(set(codes.tolist())) if not 0 <= c < len(names)]
    if outside:
        raise UserError(f"label {outside[0]} in {source!r} is outside its ClassLabel names {names}; expected "
                        f"0..{len(names) - 1} (or -1 for no label)")
    present = sorted(set(codes.tolist()))
    if len(present) < 2:
        raise UserError(f"data {source!r} has a single class ({names[present[0]]!r}) in all {len(codes)} labelled "
                        "rows; classification needs at least 2 classes")
    return codes


def _encode(values: pd.Series, source: str, class_label: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """(codes 0..C-1, class names): a ClassLabel column's own codes and names, else encode_labels."""
    if class_label is None:
        return encode_labels(values, source)
    return class_label_codes(values, class_label, source), list(class_label)


def _stratified_splits(df: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """80 / 10 / 10, stratified by label when every class has enough rows, seeded."""
    counts = df["label"].value_counts()
    strat = df["label"] if counts.min() >= STRATIFY_MIN_PER_CLASS else None
    train, rest = train_test_split(df, test_size=HELDOUT_FRACTION, random_state=seed, stratify=strat)
    strat_rest = rest["label"] if strat is not None else None
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strat_rest)
    return {"train": train, "validation": validation, "test": test}


def _check_enough_rows(df: pd.DataFrame, source: str) -> None:
    """UserError when `df` has too few rows for every split to get one (sklearn would raise a ValueError)."""
    if len(df) < MIN_ROWS:
        raise UserError(f"data {source!r} has {len(df)} usable rows (a non-empty text and a label); the seeded "
                        f"80/10/10 train/validation/test split needs at least {MIN_ROWS} rows (at least "
                        f"{STRATIFY_MIN_PER_CLASS} per class for a stratified split)")


def _check_train_classes(train: pd.DataFrame, names: list[str], source: str, seed: int) -> None:
    """UserError when the (unstratified) train split of a tiny data set holds one class only."""
    present = sorted(set(train["label"].tolist()))
    if len(present) < 2:
        raise UserError(f"data {source!r} is too small to split: with seed {seed} its train split of {len(train)} "
                        f"rows holds the single class {names[present[0]]!r}; give at least "
                        f"{STRATIFY_MIN_PER_CLASS} rows of each class (the split is then stratified)")


@dataclass
class _Table:
    """What a source gives before splitting: one table or {split: table}, the text / label columns to read (None:
    look for the defaults) and the ClassLabel names of the label column (None: encode the values)."""

    frames: dict[str, pd.DataFrame] | pd.DataFrame
    text_column: str | None
    label_column: str | None
    class_label: list[str] | None = None


def _frames(source: str, text_column: str | None, label_column: str | None) -> _Table:
    if source in CLASSIFICATION_READERS:
        if text_column not in (None, "text") or label_column not in (None, "label"):
            raise UserError(f"--text-column/--label-column do not apply to the named data set {source!r}")
        return _Table(CLASSIFICATION_READERS[source](), text_column, label_column)
    path = Path(source).expanduser()
    if path.is_file():
        return _Table(read_local(path), text_column, label_column)
    # A hub id or a datasets folder: the columns are chosen from the features, and only those two are converted.
    spec, splits = load_splits(source, sorted(CLASSIFICATION_READERS))
    columns = column_names(splits)
    tcol = choose_column(columns, text_column, TEXT_COLUMNS, "text", source)
    lcol = choose_column(columns, label_column, LABEL_COLUMNS, "label", source)
    frames = {name: to_frame(d, [tcol, lcol]) for name, d in splits.items()}
    if spec.split is not None:  # one chosen split (or split expression): a single table, split like a local file
        frames = next(iter(frames.values()))
    return _Table(frames, tcol, lcol, class_names(splits, lcol))


def _select(df: pd.DataFrame, text_column: str | None, label_column: str | None, source: str) -> pd.DataFrame:
    """Columns `text` (non-empty str) and `label` (raw values) of the rows that have both."""
    tcol = pick_column(df, text_column, TEXT_COLUMNS, "text", source)
    lcol = pick_column(df, label_column, LABEL_COLUMNS, "label", source)
    refuse_non_scalar(df[tcol], "text", tcol, source, "texts must be strings, one per row")
    refuse_non_scalar(df[lcol], "label", lcol, source, LABEL_HINT)
    out = pd.DataFrame({"text": df[tcol], "label": df[lcol]})
    has_text = out["text"].notna() & (out["text"].astype(str).str.strip().str.len() > 0)
    if len(out) and not has_text.any():
        raise UserError(f"text column {tcol!r} of {source!r} is empty: all {len(out)} rows have a missing or blank "
                        f"text; pass --text-column to use another column (columns: "
                        f"{', '.join(str(c) for c in df.columns)})")
    if len(out) and not out["label"].notna().any():
        raise UserError(f"label column {lcol!r} of {source!r} is empty: none of its {len(out)} rows has a label; "
                        f"pass --label-column to use another column (columns: {', '.join(str(c) for c in df.columns)})")
    out = out[has_text].dropna()
    return out.assign(text=out["text"].astype(str))


def _is_unlabelled(labels: pd.Series) -> bool:
    """A hub split whose every label is -1: the datasets convention for a test split shipped without labels."""
    return len(labels) > 0 and pd.api.types.is_integer_dtype(labels) and bool((labels == UNLABELLED).all())


def _labelled(df: pd.DataFrame, class_label: list[str] | None) -> pd.DataFrame:
    """A ClassLabel table without its unlabelled (-1) rows; any other table as it is."""
    return df if class_label is None else df[df["label"] != UNLABELLED]


def _local_parts(df: pd.DataFrame, text_column: str | None, label_column: str | None, source: str,
                 seed: int, class_label: list[str] | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A single table: checked, labels encoded, split 80/10/10 with `seed`."""
    if len(df) == 0:
        columns = ", ".join(str(c) for c in df.columns) or "none"
        raise UserError(f"data {source!r} is empty: it has no rows (columns: {columns}); a classification data "
                        f"set needs at least {MIN_ROWS} rows with a text and a label")
    df = _labelled(_select(df, text_column, label_column, source), class_label)
    codes, names = _encode(df["label"], source, class_label)
    df = df.assign(label=codes)
    _check_enough_rows(df, source)
    parts = _stratified_splits(df, seed)
    _check_train_classes(parts["train"], names, source, seed)
    return parts, names


def _hub_parts(frames: dict[str, pd.DataFrame], text_column: str | None, label_column: str | None, source: str,
               seed: int, class_label: list[str] | None = None) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A hub data set's own splits; validation / test carved from train where missing (or unlabelled)."""
    parts = {k: _select(v, text_column, label_column, f"{source}[{k}]") for k, v in frames.items()}
    parts = {k: _labelled(v, class_label) for k, v in parts.items() if not _is_unlabelled(v["label"])}
    if "train" not in parts:
        raise UserError(f"dataset {source!r} has no labelled train split; splits: {', '.join(frames)}")
    # One encoding over all splits, so a class gets the same index in each of them.
    names_in_order = list(parts)
    codes, names = _encode(pd.concat([parts[k]["label"] for k in names_in_order], ignore_index=True), source,
                           class_label)
    start = 0
    for k in names_in_order:
        parts[k] = parts[k].assign(label=codes[start:start + len(parts[k])])
        start += len(parts[k])
    if "validation" not in parts or "test" not in parts:
        _check_enough_rows(parts["train"], f"{source}[train]")
        extra = _stratified_splits(parts["train"], seed)
        _check_train_classes(extra["train"], names, source, seed)
        parts = {"train": extra["train"], "validation": parts.get("validation", extra["validation"]),
                 "test": parts.get("test", extra["test"])}
    return parts, names


def load_classification(source: str, *, text_column: str | None = None, label_column: str | None = None,
                        seed: int = 0, limit: int | None = None) -> ClassificationData:
    """Load a classification data set by name / path / hub id / `datasets` folder, with train/validation/test splits.

    `source`: a named asset, a local csv/tsv/jsonl/json/parquet file, a folder `datasets` reads (save_to_disk, or
    csv/json/parquet files), or a hub id `ID[:CONFIG[:SPLIT]]` (data.hub). Splits are deterministic for a given
    seed (stratified 80/10/10 of the one table, unless the source has its own validation and test splits; a
    chosen SPLIT is one table). A ClassLabel label column keeps its codes and names (label_names[i] = names[i]);
    other labels are encoded (encode_labels). `limit` caps the examples of each split (taken from the shuffled
    split).
    """
    if limit is not None and limit < 1:
        raise UserError(f"bad value {limit!r} for limit: expected a positive integer")
    table = _frames(source, text_column, label_column)
    args = (table.text_column, table.label_column, source, seed, table.class_label)
    if isinstance(table.frames, pd.DataFrame):
        parts, names = _local_parts(table.frames, *args)
        names = LABEL_NAMES.get(source, names)  # a named set's 0 / 1 have names (config id2label, reports)
    else:
        parts, names = _hub_parts(table.frames, *args)
    splits = {}
    for name in SPLITS:
        df = parts[name].sample(frac=1.0, random_state=seed).reset_index(drop=True)
        if limit is not None:
            df = df.iloc[:limit]
        if len(df) == 0:
            raise UserError(f"data {source!r}: the {name} split is empty; give more rows")
        splits[name] = Dataset.from_pandas(df[["text", "label"]].astype({"label": "int64"}), preserve_index=False)
    return ClassificationData(name=source, label_names=names, **splits)
