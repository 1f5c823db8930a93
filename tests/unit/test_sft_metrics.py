"""SFT evaluation (training/lm_evaluate.py, tasks/choice_accuracy.py, tasks/causal_lm.py) against independent
computations from the plain logits of a tiny Llama; the SFT config's strategy checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit._sft_helpers import chat_tokenizer, pair_rows, write_jsonl
from tunescope.data.sft import answer_of, load_sft
from tunescope.data.sft_prepare import prepare_sft, sft_collator
from tunescope.errors import UserError
from tunescope.models.tiny import tiny_causal_lm
from tunescope.tasks.choice_accuracy import choice_accuracy
from tunescope.training.lm_evaluate import token_metrics, token_statistics

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=[True, False], ids=["turns", "strings"])
def setup(tmp_path_factory, request):
    path = write_jsonl(tmp_path_factory.mktemp("m") / "pairs.jsonl", pair_rows(40, conversational=request.param))
    data = load_sft(str(path), seed=0)
    tok = chat_tokenizer()
    prepared = prepare_sft(data, tok, 64)
    model = tiny_causal_lm("llama", tok, seed=1, num_layers=2, hidden=32)
    return data, tok, prepared, model


@torch.no_grad()
def _by_hand(model, rows) -> tuple[list[float], list[int], list[int]]:
    """Per row: sum of log softmax(logits)[label] over the loss tokens, their count, argmax hits (one row at a time,
    full logits, no padding)."""
    logprob, tokens, correct = [], [], []
    for row in rows:
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
        target = labels[1:]
        mask = target != -100
        logprob.append(float(logp[mask].gather(1, target[mask, None]).sum()))
        tokens.append(int(mask.sum()))
        correct.append(int((logp[mask].argmax(-1) == target[mask]).sum()))
    return logprob, tokens, correct


def test_token_metrics_match_the_plain_logits(setup):
    _, tok, prepared, model = setup
    rows = prepared.tokenized["test"].select_columns(["input_ids", "labels"])
    stats = token_statistics(model, rows, sft_collator(tok), batch_size=3)
    assert "forward" not in vars(model)  # the fused head is taken off again
    logprob, tokens, correct = _by_hand(model, rows)
    np.testing.assert_allclose(stats["logprob"], logprob, rtol=1e-4, atol=1e-4)
    assert stats["tokens"].tolist() == tokens and stats["correct"].tolist() == correct
    metrics = token_metrics(stats)
    loss = -sum(logprob) / sum(tokens)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)
    assert metrics["perplexity"] == pytest.approx(math.exp(loss), rel=1e-4)
    assert metrics["mean_token_accuracy"] == pytest.approx(sum(correct) / sum(tokens))


def test_choice_accuracy_scores_each_answer_like_training(setup):
    data, tok, prepared, model = setup
    rows = prepared.tokenized["test"]["row"]
    metrics, arrays = choice_accuracy(model, tok, data.test, rows, collator=sft_collator(tok), batch_size=4,
                                      max_new_tokens=3)
    examples = [data.test[r] for r in rows]
    # The reference answer's score is the example's own training sequence's log-probability.
    own = token_statistics(model, prepared.tokenized["test"].select_columns(["input_ids", "labels"]),
                           sft_collator(tok), batch_size=4)["logprob"]
    reference = [e["choices"].index(answer_of(e).strip()) for e in examples]
    np.testing.assert_allclose(arrays["choice_logprob"][np.arange(len(rows)), reference], own, rtol=1e-5)
    picked = arrays["choice_logprob"].argmax(1)
    assert metrics["task_accuracy_loglik"] == pytest.approx(np.mean(picked == np.array(reference)))
    hits = [g.strip().splitlines()[0].strip() == answer_of(e).strip() if g.strip() else False
            for g, e in zip(arrays["generated"], examples)]
    assert metrics["task_accuracy_generate"] == pytest.approx(np.mean(hits))
    assert metrics["task_examples"] == len(rows)


@pytest.mark.parametrize("strategy", ["head", "lp-ft", "lp-lora"])
def test_head_strategies_are_refused(strategy):
    from tunescope.config import build_config
    from tunescope.experiments.sft import SFTConfig

    with pytest.raises(UserError, match="fits a classification head.*use one of .*lora"):
        build_config(SFTConfig, {"strategy": strategy})


def test_sft_defaults_are_a_decoder_on_chat_data():
    from tunescope.experiments.sft import SFTConfig

    config = SFTConfig()
    assert (config.model, config.data, config.strategy, config.completion_only_loss) == \
        ("smollm2-135m", "quartz", "lora", True)
