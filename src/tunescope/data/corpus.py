"""Text corpora for language modelling, with a deterministic held-out split."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tunescope.data.hub import load_splits, to_frame
from tunescope.data.named import CORPUS_READERS
from tunescope.data.sources import (
    choose_column,
    pick_column,
    read_local,
    refuse_non_scalar,
)
from tunescope.errors import UserError

TEXT_COLUMNS = ("text", "content", "document")  # looked for, in order, when --text-column is not given


@dataclass
class Corpus:
    """Documents for training and held-out evaluation (held-out documents never appear in train)."""

    name: str
    train: list[str]
    heldout: list[str]

    def sizes(self) -> dict[str, int]:
        return {"train_docs": len(self.train), "heldout_docs": len(self.heldout),
                "train_chars": sum(map(len, self.train)), "heldout_chars": sum(map(len, self.heldout))}


def load_corpus(source: str = "news_text", *, text_column: str | None = None, seed: int = 0,
                heldout_fraction: float = 0.05, limit: int | None = None) -> Corpus:
    """Load a corpus (named asset, local csv/jsonl/parquet/txt, hub id ID[:CONFIG[:SPLIT]] or `datasets` folder;
    its train split, else its first, unless SPLIT names one) and split off held-out documents.

    `limit` caps the number of documents (after shuffling). The held-out set is
    max(1, round(heldout_fraction * n)) documents.
    """
    if not 0 < heldout_fraction < 1:
        raise UserError(f"bad value {heldout_fraction!r} for heldout_fraction: expected a number in (0, 1)")
    if source in CORPUS_READERS:
        df = CORPUS_READERS[source]()
    elif Path(source).expanduser().is_file():
        df = read_local(Path(source).expanduser())
    else:  # a hub id (ID[:CONFIG[:SPLIT]]) or a datasets folder: only the text column is converted
        _, splits = load_splits(source, sorted(CORPUS_READERS))
        dataset = splits.get("train", next(iter(splits.values())))
        df = to_frame(dataset, [choose_column(dataset.column_names, text_column, TEXT_COLUMNS, "text", source)])
    col = pick_column(df, text_column, TEXT_COLUMNS, "text", source)
    refuse_non_scalar(df[col], "text", col, source, "documents must be strings, one per row")
    docs = [str(t) for t in df[col].dropna().tolist() if str(t).strip()]
    random.Random(seed).shuffle(docs)
    if limit is not None:
        docs = docs[:limit]
    if len(docs) < 2:
        raise UserError(f"corpus {source!r} has {len(docs)} non-empty documents in column {col!r}"
                        f"{' after --limit' if limit is not None else ''}; need at least 2")
    n_held = max(1, round(heldout_fraction * len(docs)))
    return Corpus(name=source, train=docs[n_held:], heldout=docs[:n_held])
