"""Reading a user's data source: a named asset, a local csv/tsv/jsonl/json/parquet/txt file, or (through data.hub)
a hub id or a local `datasets` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tunescope.errors import UserError, did_you_mean

LOCAL_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt")


def read_local(path: Path) -> pd.DataFrame:
    """A local table as a DataFrame; .txt files give one row per non-empty line in column `text`."""
    suffix = path.suffix.lower()
    if suffix in LOCAL_SUFFIXES and path.stat().st_size == 0:
        expected = ("one document per line" if suffix == ".txt" else
                    f"a {suffix[1:]} table with a text column (and a label column for classification)")
        raise UserError(f"data file {str(path)!r} is empty (0 bytes); expected {expected}")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".txt":
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
            return pd.DataFrame({"text": [ln for ln in lines if ln]})
    except pd.errors.EmptyDataError:  # only blank lines: pandas' own message ("No columns to parse") says less
        raise UserError(f"data file {str(path)!r} holds no table (only blank lines); expected a header row such as "
                        "'text,label' and one row per example") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise UserError(f"could not read data file {str(path)!r}: {str(e).splitlines()[0]}") from None
    raise UserError(f"unsupported data file type {suffix!r} for {str(path)!r}; accepted: {', '.join(LOCAL_SUFFIXES)}")


def read_hub(name: str, named: list[str]) -> dict[str, pd.DataFrame]:
    """Every split of a hub data set or `datasets` folder (data.hub: ID[:CONFIG[:SPLIT]]), all columns, as
    DataFrames; UserError when it cannot be loaded (e.g. offline). Readers that need only some columns use
    data.hub.load_splits + to_frame instead."""
    from tunescope.data.hub import load_splits

    _, splits = load_splits(name, named)
    return {split: d.to_pandas() for split, d in splits.items()}


def pick_column(df: pd.DataFrame, wanted: str | None, defaults: tuple[str, ...], role: str, source: str) -> str:
    """The column to use for `role` (text / label): `wanted` if given, else the first default present."""
    return choose_column([str(c) for c in df.columns], wanted, defaults, role, source)


def choose_column(columns: list[str], wanted: str | None, defaults: tuple[str, ...], role: str, source: str) -> str:
    """pick_column over a list of column names (a `datasets.Dataset`'s, before anything is converted)."""
    if wanted is not None:
        if wanted not in columns:
            raise UserError(f"{role} column {wanted!r} not found in {source}; columns: {', '.join(columns)}"
                            + did_you_mean(wanted, columns))
        return wanted
    for name in defaults:
        if name in columns:
            return name
    raise UserError(f"no {role} column in {source} (looked for {', '.join(defaults)}); columns: "
                    f"{', '.join(columns)}; pass --{role}-column")


def show_value(value: Any, width: int = 60) -> str:
    """repr(value), cut to `width` characters so that an error message stays one readable line."""
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy 2 would write np.float64(0.5)
        value = value.item()
    text = repr(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def first_non_scalar(values: pd.Series) -> tuple[int, Any] | None:
    """(1-based row, value) of the first list / dict / array in `values`, or None when every cell is a scalar."""
    if values.dtype != object:  # numeric and string dtypes cannot hold containers: skip the Python loop
        return None
    for row, value in enumerate(values.tolist(), start=1):
        if not pd.api.types.is_scalar(value):
            return row, value
    return None


def refuse_non_scalar(values: pd.Series, role: str, column: str, source: str, accepted: str) -> None:
    """UserError when a cell of `column` holds a list / dict / array instead of one value (JSON allows both)."""
    hit = first_non_scalar(values)
    if hit is not None:
        row, value = hit
        raise UserError(f"{role} column {column!r} of {source!r} holds a {type(value).__name__} in row {row} "
                        f"({show_value(value)}); {accepted}")
