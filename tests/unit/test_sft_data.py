"""SFT data (data/sft.py): the three formats from local files, the seeded split, bad rows refused, and QuaRTz."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.unit._sft_helpers import messages_rows, pair_rows, write_jsonl
from tunescope.data.sft import answer_of, load_sft, prompt_of
from tunescope.errors import UserError


def test_messages_jsonl_is_split_80_10_10_with_the_seed(tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", messages_rows(50))
    data = load_sft(str(path), seed=3)
    assert data.format == "messages" and data.conversational and data.has_choices
    assert data.sizes() == {"train": 40, "validation": 5, "test": 5}
    again = load_sft(str(path), seed=3)
    assert data.test["messages"] == again.test["messages"]
    other = load_sft(str(path), seed=4)
    assert data.test["messages"] != other.test["messages"]
    limited = load_sft(str(path), seed=3, limit=2)
    assert limited.sizes() == {"train": 2, "validation": 2, "test": 2}
    assert limited.train["messages"] == data.train["messages"][:2]


def test_prompt_completion_and_text_formats(tmp_path):
    strings = load_sft(str(write_jsonl(tmp_path / "pc.jsonl", pair_rows(20, conversational=False))))
    assert strings.format == "prompt-completion" and not strings.conversational
    turns = load_sft(str(write_jsonl(tmp_path / "pct.jsonl", pair_rows(20, conversational=True))))
    assert turns.format == "prompt-completion" and turns.conversational
    pd.DataFrame({"body": [f"document {i}" for i in range(20)] + ["  "]}).to_csv(tmp_path / "t.csv", index=False)
    text = load_sft(str(tmp_path / "t.csv"), text_column="body")
    assert text.format == "text" and sum(text.sizes().values()) == 20  # the blank row is dropped


def test_messages_in_a_csv_cell_are_read_as_json(tmp_path):
    rows = messages_rows(20, choices=False)
    pd.DataFrame({"messages": [json.dumps(r["messages"]) for r in rows]}).to_csv(tmp_path / "c.csv", index=False)
    data = load_sft(str(tmp_path / "c.csv"))
    assert data.format == "messages" and data.train[0]["messages"][2]["role"] == "assistant"


def test_answer_and_prompt_of_each_format():
    chat = messages_rows(1)[0]
    assert answer_of(chat) == "a" and [t["role"] for t in prompt_of(chat)] == ["system", "user"]
    pair = pair_rows(1, conversational=False)[0]
    assert answer_of(pair) == " a" and prompt_of(pair) == pair["prompt"]


def _with(rows: list[dict], i: int, **changes) -> list[dict]:
    rows[i] = {**rows[i], **changes}
    return rows


@pytest.mark.parametrize("rows, message", [
    (_with(messages_rows(20), 4, messages=[{"role": "bot", "content": "hi"}]),
     "row 5 of .*role 'bot'; accepted roles: system, user, assistant"),
    (_with(messages_rows(20), 0, messages=[{"role": "user", "content": "hi"}]), "row 1 .* has no assistant turn"),
    (_with(messages_rows(20), 2, messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]),
     "row 3 .*last assistant turn of its messages is empty"),
    (_with(messages_rows(20), 1, messages=[{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]),
     "row 2 .*expected a string"),
    (_with(pair_rows(20, conversational=False), 6, completion=""), "row 7 .* has an empty completion"),
    (_with(pair_rows(20, conversational=False), 6, completion=["a"]), "row 7 .*prompt must be a non-empty list"),
    (_with(pair_rows(20, conversational=True), 3, prompt="plain"), "row 4 .*prompt must be a non-empty list"),
    (_with(pair_rows(20, conversational=False), 8, choices=["b", "c"]), "row 9 .*answer ' a' is not one of"),
    (_with(pair_rows(20, conversational=False), 8, choices=["a"]), "row 9 .*at least two"),
    ([{"question": "q", "answer": "a"}] * 20, "no SFT columns .*question"),
    (messages_rows(2), "2 usable rows"),
])
def test_bad_rows_are_refused_naming_the_row(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(UserError, match=message):
        load_sft(str(path))


def test_mixed_prompt_kinds_are_refused(tmp_path):
    rows = pair_rows(10, conversational=True) + pair_rows(10, conversational=False)
    with pytest.raises(UserError, match="row 11 .*mixes prompt / completion kinds"):
        load_sft(str(write_jsonl(tmp_path / "mixed.jsonl", rows)))


@pytest.mark.slow
def test_quartz_asset_reads_as_two_choice_chat_questions():
    data = load_sft("quartz", seed=0)
    assert data.format == "prompt-completion" and data.conversational and data.has_choices
    assert sum(data.sizes().values()) == 3844  # 3,860 lines, 16 questions asked twice kept once
    example = data.test[0]
    assert [t["role"] for t in example["prompt"]] == ["system", "user"]
    assert example["choices"] == ["A", "B"] and answer_of(example) in ("A", "B")
