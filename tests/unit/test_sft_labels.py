"""Which tokens carry the SFT loss (data/sft_prepare.py): every prompt token's label is -100, checked against
prefix lengths computed here independently from the chat template / the tokenizer."""

from __future__ import annotations

import pytest

from tests.unit._sft_helpers import PLAIN_TEMPLATE, TEMPLATE, chat_tokenizer, messages_rows, pair_rows, write_jsonl
from tunescope.data.sft import load_sft, prompt_of
from tunescope.data.sft_prepare import prepare_sft
from tunescope.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")


def _prepared(tmp_path, rows, template=TEMPLATE, max_length=64, completion_only_loss=True):
    data = load_sft(str(write_jsonl(tmp_path / "d.jsonl", rows)), seed=0)
    tok = chat_tokenizer(template)
    return data, tok, prepare_sft(data, tok, max_length, completion_only_loss)


def _split_at(labels: list[int], ids: list[int], prefix: int) -> None:
    """labels ignore exactly the first `prefix` tokens and equal the input ids after them."""
    assert all(label == -100 for label in labels[:prefix])
    assert labels[prefix:] == ids[prefix:] and len(labels) > prefix


def _rendered_length(tok, turns: list[dict]) -> int:
    """Tokens of `turns` rendered with the generation prompt: the context the reply follows."""
    return len(tok.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


def test_messages_without_markers_put_the_loss_on_the_last_reply_only(tmp_path):
    data, tok, prepared = _prepared(tmp_path, messages_rows(20), template=PLAIN_TEMPLATE)
    assert prepared.facts["loss_on"] == "last assistant turn"
    for split in ("train", "test"):
        for row in prepared.tokenized[split]:
            prompt = prompt_of(data.split(split)[row["row"]])
            _split_at(row["labels"], row["input_ids"], _rendered_length(tok, prompt))


def test_messages_with_markers_put_the_loss_on_every_assistant_turn(tmp_path):
    rows = messages_rows(20, choices=False)
    for row in rows:  # two assistant turns: both trained, the user turn between them not
        row["messages"] += [{"role": "user", "content": "thanks"}, {"role": "assistant", "content": "welcome"}]
    data, tok, prepared = _prepared(tmp_path, rows)
    assert prepared.facts["loss_on"] == "assistant turns"
    vocab = tok.convert_ids_to_tokens
    for row in prepared.tokenized["train"]:
        turns = data.train[row["row"]]["messages"]
        context = _rendered_length(tok, turns[:2])  # system + user + the assistant header
        assert all(label == -100 for label in row["labels"][:context])
        assert row["labels"][context] == row["input_ids"][context]  # the reply starts right after it
        trained = vocab([label for label in row["labels"] if label != -100])
        assert trained == [turns[2]["content"], "[SEP]", "welcome", "[SEP]"]  # the replies and their end tokens


@pytest.mark.parametrize("conversational", [True, False])
def test_prompt_completion_puts_the_loss_on_the_completion(tmp_path, conversational):
    data, tok, prepared = _prepared(tmp_path, pair_rows(20, conversational=conversational))
    assert prepared.facts["loss_on"] == "completion"
    for row in prepared.tokenized["train"]:
        example = data.train[row["row"]]
        if conversational:
            prefix = _rendered_length(tok, example["prompt"])
        else:  # the tiny tokenizer opens every text with [CLS]
            prefix = 1 + len(tok(example["prompt"], add_special_tokens=False)["input_ids"])
        _split_at(row["labels"], row["input_ids"], prefix)


def test_without_completion_only_loss_every_token_is_trained(tmp_path):
    _, _, prepared = _prepared(tmp_path, messages_rows(20), completion_only_loss=False)
    assert prepared.facts["loss_on"] == "all tokens"
    for row in prepared.tokenized["train"]:
        assert row["labels"] == row["input_ids"]


def test_text_rows_train_on_every_token(tmp_path):
    _, _, prepared = _prepared(tmp_path, [{"text": f"the sky is blue {i}"} for i in range(20)])
    assert all(r["labels"] == r["input_ids"] for r in prepared.tokenized["train"])


def test_long_prompts_are_dropped_and_a_split_left_empty_is_refused(tmp_path):
    rows = pair_rows(60, conversational=False)
    for row in rows[::3]:
        row["prompt"] = "the sky is blue " * 20 + row["prompt"]
    data, tok, prepared = _prepared(tmp_path, rows, max_length=40)
    kept = sum(len(ds) for ds in prepared.tokenized.values())
    assert kept + sum(prepared.facts["dropped_long_prompts"].values()) == 60 and kept == 40
    assert all(len(r["input_ids"]) <= 40 for ds in prepared.tokenized.values() for r in ds)
    with pytest.raises(UserError, match="raise --max-length above"):
        prepare_sft(data, tok, 8, True)
