"""Supervised fine-tuning data: conversations, prompt / completion pairs or plain text, split 80/10/10 with a seed.

The formats are trl's (the first one the columns fit is used):
    messages           per row a list of turns {"role", "content"}; roles system, user, assistant; at least one
                       assistant turn with content (the loss goes on the assistant's replies)
    prompt-completion  per row `prompt` and `completion`: both strings (standard), or both lists of turns
                       (conversational: the completion holds the assistant's reply)
    text               per row one string (`--text-column`, default `text`); every token is trained on
An optional `choices` column (a list of at least two candidate answers, e.g. ["A", "B"]) makes the data a
multiple-choice task: the reference answer is the completion (or the last assistant turn) and must be one of the
choices; the causal-LM task then also reports task accuracy (tasks/causal_lm.py).

Bad rows (an unknown role, no assistant turn, an empty completion, a reference answer outside its choices) are
refused with a UserError naming the row, before any model is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasets import Dataset

from tunescope.data.classification import HELDOUT_FRACTION, MIN_ROWS, SPLITS
from tunescope.data.sources import read_hub, read_local, show_value
from tunescope.errors import UserError

FORMATS = ("messages", "prompt-completion", "text")
ROLES = ("system", "user", "assistant")
FORMAT_HINT = ("SFT data needs a `messages` column (lists of {role, content} turns), `prompt` and `completion` "
               "columns, or a text column")


@dataclass
class SFTData:
    """Three splits in one of FORMATS (trl's column names), plus `choices` when the data is multiple-choice.

    conversational: the rows are chat turns (messages, or prompt / completion as turns), so the model's chat
    template renders them.
    """

    name: str
    format: str
    conversational: bool
    train: Dataset
    validation: Dataset
    test: Dataset

    @property
    def has_choices(self) -> bool:
        return "choices" in self.train.column_names

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, s)) for s in SPLITS}

    def split(self, name: str) -> Dataset:
        return getattr(self, name)


def answer_of(example: dict) -> str:
    """The reference answer of one row: the completion string, or the content of the last assistant turn."""
    if "messages" in example:
        return [t for t in example["messages"] if t["role"] == "assistant"][-1]["content"]
    completion = example["completion"]
    return completion if isinstance(completion, str) else completion[-1]["content"]


def prompt_of(example: dict) -> str | list[dict]:
    """What the model is given before the reference answer: the prompt, or the turns before the last assistant
    turn (a conversation)."""
    if "messages" in example:
        turns = example["messages"]
        last = max(i for i, t in enumerate(turns) if t["role"] == "assistant")
        return turns[:last]
    return example["prompt"]


# ---- reading -------------------------------------------------------------------------------------------------

def _quartz() -> list[dict]:
    """QuaRTz from OpenAI's evals registry: {"input": [system, user turns], "ideal": "A"} per line.

    As conversational prompt / completion rows; `choices` are the option letters of the question ("\\n A: ...");
    a question asked twice is kept once (its first answer), so no question sits in two splits.
    """
    from tunescope.assets import fetch

    rows, seen = [], set()
    for line in (fetch("quartz") / "samples.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        question = item["input"][-1]["content"]
        if question in seen:
            continue
        seen.add(question)
        letters = re.findall(r"^\s*([A-Z]):", question, flags=re.MULTILINE)
        rows.append({"prompt": [{"role": t["role"], "content": t["content"]} for t in item["input"]],
                     "completion": [{"role": "assistant", "content": item["ideal"]}],
                     "choices": letters})
    return rows


SFT_READERS: dict[str, Callable[[], list[dict]]] = {"quartz": _quartz}


# Column sets that make a local file SFT data (conversations, or prompt / completion pairs).
SFT_COLUMNS = ({"messages"}, {"prompt", "completion"})


def is_sft_source(source: str) -> bool:
    """True for SFT data: a named SFT asset (quartz) or a local file with a `messages` column or `prompt` +
    `completion` columns. A hub id or any other name is not (callers that need it say so explicitly)."""
    from tunescope.data.sources import read_local

    if source in SFT_READERS:
        return True
    path = Path(source).expanduser()
    if not path.is_file():
        return False
    columns = set(read_local(path).columns)
    return any(c <= columns for c in SFT_COLUMNS)


def _plain(value: Any) -> Any:
    """A cell as plain Python: numpy arrays (parquet lists) as lists, JSON text of a list (a csv cell) parsed."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _table(source: str) -> pd.DataFrame:
    path = Path(source).expanduser()
    if path.is_file():
        return read_local(path)
    if path.is_dir():
        raise UserError(f"data {source!r} is a folder; pass a jsonl/json/csv/parquet file")
    frames = read_hub(source, sorted(SFT_READERS))
    return frames.get("train", next(iter(frames.values())))


def _raw_rows(source: str) -> list[dict]:
    if source in SFT_READERS:
        return SFT_READERS[source]()
    df = _table(source)
    return [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


# ---- checking ------------------------------------------------------------------------------------------------

def _format_of(columns: set[str], text_column: str | None, source: str) -> str:
    if text_column is not None:
        if text_column not in columns:
            raise UserError(f"text column {text_column!r} not found in {source!r}; columns: "
                            f"{', '.join(sorted(columns))}")
        return "text"
    if "messages" in columns:
        return "messages"
    if {"prompt", "completion"} <= columns:
        return "prompt-completion"
    if "text" in columns:
        return "text"
    raise UserError(f"no SFT columns in {source!r} (columns: {', '.join(sorted(columns)) or 'none'}); {FORMAT_HINT}")


def _turns(value: Any, where: str, what: str) -> list[dict]:
    """A list of {role, content} turns (other keys dropped), or UserError."""
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: {what} must be a non-empty list of {{role, content}} turns, got "
                        f"{show_value(value)}")
    turns = []
    for j, turn in enumerate(value, start=1):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            raise UserError(f"{where}: turn {j} of {what} is {show_value(turn)}; expected {{role, content}}")
        if turn["role"] not in ROLES:
            raise UserError(f"{where}: turn {j} of {what} has role {turn['role']!r}; accepted roles: "
                            f"{', '.join(ROLES)}")
        if not isinstance(turn["content"], str):
            raise UserError(f"{where}: turn {j} of {what} has content {show_value(turn['content'])}; expected a "
                            "string")
        turns.append({"role": turn["role"], "content": turn["content"]})
    return turns


def _check_assistant(turns: list[dict], where: str, what: str) -> None:
    replies = [t for t in turns if t["role"] == "assistant"]
    if not replies:
        roles = ", ".join(t["role"] for t in turns)
        raise UserError(f"{where} has no assistant turn in its {what} (roles: {roles}); SFT trains on the "
                        "assistant's replies, so every conversation needs one")
    if not replies[-1]["content"].strip():
        raise UserError(f"{where}: the last assistant turn of its {what} is empty; every example needs a reply "
                        "to train on")


def _checked_row(row: dict, fmt: str, text_column: str, where: str) -> dict | None:
    """The row in trl's format (only the columns the format uses), or None for a blank text row."""
    if fmt == "messages":
        turns = _turns(row["messages"], where, "messages")
        _check_assistant(turns, where, "messages")
        return {"messages": turns}
    if fmt == "text":
        text = row[text_column]
        if text is None or (isinstance(text, float) and np.isnan(text)):
            return None
        if not isinstance(text, str):
            raise UserError(f"{where}: text {show_value(text)} is not a string")
        return {"text": text} if text.strip() else None
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, list) or isinstance(completion, list):
        prompt_turns = _turns(prompt, where, "prompt")
        completion_turns = _turns(completion, where, "completion")
        _check_assistant(completion_turns, where, "completion")
        return {"prompt": prompt_turns, "completion": completion_turns}
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise UserError(f"{where}: prompt {show_value(prompt)} and completion {show_value(completion)} must both be "
                        "strings, or both lists of {role, content} turns")
    if not completion.strip():
        raise UserError(f"{where} has an empty completion; every example needs a completion to train on")
    return {"prompt": prompt, "completion": completion}


def _checked_choices(value: Any, answer: str, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(c, str) and c.strip() for c in value):
        raise UserError(f"{where}: choices {show_value(value)} must be a list of at least two non-empty strings")
    if answer.strip() not in [c.strip() for c in value]:
        raise UserError(f"{where}: its answer {answer!r} is not one of its choices {show_value(value)}")
    return value


def _checked_rows(raw: list[dict], text_column: str | None, source: str) -> tuple[str, list[dict]]:
    if not raw:
        raise UserError(f"data {source!r} is empty: it has no rows; {FORMAT_HINT}")
    fmt = _format_of(set(raw[0]), text_column, source)
    has_choices = fmt != "text" and "choices" in raw[0]
    rows: list[dict] = []
    for i, row in enumerate(raw, start=1):
        where = f"row {i} of {source!r}"
        checked = _checked_row(row, fmt, text_column or "text", where)
        if checked is None:
            continue
        if fmt == "prompt-completion" and rows and isinstance(checked["prompt"], list) != isinstance(
                rows[0]["prompt"], list):
            raise UserError(f"{where} mixes prompt / completion kinds: earlier rows hold "
                            f"{'turns' if isinstance(rows[0]['prompt'], list) else 'strings'}, this one does not; "
                            "use strings in every row, or lists of {role, content} turns in every row")
        if has_choices:
            checked["choices"] = _checked_choices(row.get("choices"), answer_of(checked), where)
        rows.append(checked)
    if not rows:
        raise UserError(f"data {source!r} has no non-empty rows in its text column {text_column or 'text'!r}")
    return fmt, rows


# ---- splitting -----------------------------------------------------------------------------------------------

def load_sft(source: str, *, text_column: str | None = None, seed: int = 0, limit: int | None = None) -> SFTData:
    """Load SFT data (a named asset such as `quartz`, a local jsonl/json/csv/parquet file, or a hub id), check
    every row, and split it 80/10/10 with `seed` (datasets' seeded train_test_split, twice). `limit` caps each
    split (its first `limit` rows; the splits are already shuffled)."""
    if limit is not None and limit < 1:
        raise UserError(f"bad value {limit!r} for limit: expected a positive integer")
    fmt, rows = _checked_rows(_raw_rows(source), text_column, source)
    if len(rows) < MIN_ROWS:
        raise UserError(f"data {source!r} has {len(rows)} usable rows; the seeded 80/10/10 train/validation/test "
                        f"split needs at least {MIN_ROWS}")
    full = Dataset.from_list(rows)
    first = full.train_test_split(test_size=HELDOUT_FRACTION, seed=seed)
    second = first["test"].train_test_split(test_size=0.5, seed=seed)
    splits = {"train": first["train"], "validation": second["train"], "test": second["test"]}
    if limit is not None:
        splits = {k: v.select(range(min(limit, len(v)))) for k, v in splits.items()}
    conversational = fmt == "messages" or (fmt == "prompt-completion" and isinstance(rows[0]["prompt"], list))
    return SFTData(name=source, format=fmt, conversational=conversational, **splits)
