"""Data that the `datasets` library reads: a hub id, or a local folder written by `datasets`.

Source syntax: `ID[:CONFIG[:SPLIT]]`, e.g. `stanfordnlp/sst2`, `nyu-mll/glue:sst2`, `stanfordnlp/imdb::train`,
`nyu-mll/glue:sst2:train[:2000]`. A hub id never contains ':', so the first ':' ends the id; CONFIG is the
`name` argument of `datasets.load_dataset` (empty: the default config) and SPLIT is everything after the second
':' in datasets' split syntax (`train`, `train+validation`, `train[:10%]`), passed on as `split=`.
A local folder is read in place: a `save_to_disk` folder (dataset_dict.json or state.json inside) through
`datasets.load_from_disk` (SPLIT must then be one of its split names), any other folder through
`datasets.load_dataset(folder)` (csv / json / parquet files; features declared in its README.md or kept in
parquet metadata, ClassLabel names included).

The result stays a dict of `datasets.Dataset` (Arrow, memory-mapped): callers convert only the columns they use
(`to_frame`), and ClassLabel names come from the features (`class_names`), not from the values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunescope.errors import UserError, did_you_mean

# Files that mark a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`.
SAVED_MARKERS = ("dataset_dict.json", "state.json")


@dataclass(frozen=True)
class DatasetsSource:
    """Where `datasets` reads from: `path` (hub id or folder), `config` (None: default), `split` (None: all)."""

    path: str
    config: str | None = None
    split: str | None = None

    @property
    def is_folder(self) -> bool:
        return Path(self.path).expanduser().is_dir()

    @property
    def is_saved_folder(self) -> bool:
        folder = Path(self.path).expanduser()
        return any((folder / marker).is_file() for marker in SAVED_MARKERS)


def parse_source(text: str) -> DatasetsSource:
    """`ID[:CONFIG[:SPLIT]]` -> DatasetsSource; an existing local folder is taken whole, colons and all."""
    if Path(text).expanduser().is_dir():
        return DatasetsSource(text)
    path, _, rest = text.partition(":")
    config, _, split = rest.partition(":")  # the split keeps its own ':' (train[:10%])
    if not path:
        raise UserError(f"bad data source {text!r}: expected ID[:CONFIG[:SPLIT]], e.g. nyu-mll/glue:sst2:train")
    return DatasetsSource(path, config or None, split or None)


@contextmanager
def _bars_off(off: bool) -> Iterator[None]:
    """datasets' progress bars off for the block when `off` (restored afterwards); the user's -q is left alone."""
    from datasets.utils import logging as ds_logging

    if not off or not ds_logging.is_progress_bar_enabled():
        yield
        return
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        ds_logging.enable_progress_bar()


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def _load_saved(source: DatasetsSource) -> dict:
    """A save_to_disk folder: {split: Dataset} (a saved single Dataset is split 'train')."""
    import datasets

    with _bars_off(True):
        loaded = datasets.load_from_disk(str(Path(source.path).expanduser()))
    splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    if source.config:
        raise UserError(f"bad config {source.config!r} for the saved data set {source.path!r}: a save_to_disk "
                        "folder has no configs; use FOLDER::SPLIT")
    if source.split is None:
        return splits
    if source.split not in splits:
        raise UserError(f"unknown split {source.split!r} of {source.path!r}; splits: {', '.join(splits)}."
                        + did_you_mean(source.split, splits))
    return {source.split: splits[source.split]}


def load_splits(text: str, named: list[str]) -> tuple[DatasetsSource, dict]:
    """(source, {split name: datasets.Dataset}) for a hub id or local folder; with a SPLIT, its one Dataset
    under the name SPLIT. UserError (one line) when `datasets` cannot load it: offline, unknown id, bad config
    or split (`named`: the named assets, for the message)."""
    source = parse_source(text)
    looks_like_file = text.startswith((".", "/", "~")) and not source.is_folder
    if looks_like_file or Path(source.path).suffix.lower() in (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"):
        raise UserError(f"data file {text!r} does not exist")
    if source.is_saved_folder:
        try:
            return source, _load_saved(source)
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged folder, whatever datasets raises for it
            raise UserError(f"could not read the saved data set {source.path!r}: {_first_line(e)}") from None
    try:
        import datasets

        # A local folder is only converted, not downloaded: its "Generating split" bars would only bury the result
        # (or the one-line error); a hub download keeps its bars.
        with _bars_off(source.is_folder):
            loaded = datasets.load_dataset(source.path, source.config, split=source.split)
    except Exception as e:  # noqa: BLE001 - offline, unknown id, gated, bad config / split: "cannot use this"
        if source.is_folder:
            raise UserError(f"data folder {source.path!r} could not be read by datasets.load_dataset "
                            f"({_first_line(e)}); accepted: a save_to_disk folder, or a folder of csv / json / jsonl "
                            "/ parquet files") from None
        raise UserError(f"unknown dataset {text!r}: not a named asset ({', '.join(named)}), not a local file, "
                        f"and the hub could not load it through datasets.load_dataset ({_first_line(e)}); "
                        f"hub sources are ID[:CONFIG[:SPLIT]].{did_you_mean(text, named)}") from None
    splits = {source.split: loaded} if source.split is not None else dict(loaded)
    return source, splits


def column_names(splits: dict) -> list[str]:
    """The columns of the first split (every split of a data set shares its features)."""
    return list(next(iter(splits.values())).column_names)


def class_names(splits: dict, column: str) -> list[str] | None:
    """The names of a ClassLabel column (label i is names[i]); None when the column is not a ClassLabel."""
    import datasets

    feature = next(iter(splits.values())).features.get(column)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def to_frame(dataset, columns: list[str]):
    """Only `columns` of a Dataset as a pandas DataFrame (the other columns are never converted)."""
    return dataset.select_columns(list(dict.fromkeys(columns))).to_pandas()
