"""`tunescope sparsity` on a causal LM's SFT loss: per-kind quasi-sparsity of a tiny saved Llama on chat data.

The shares in results.json are checked against an independent computation: the gradient of a hand-written
completion-only NLL (from the logits, labels -100 outside the assistant turns) summed over the same probe batches,
each kind's entries of all blocks pooled, squared and sorted. The same computation on every real token's NLL gives
other shares, so the measured gradient is that of the masked SFT loss.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.unit._sft_helpers import messages_rows, save_tiny_llama, write_jsonl
from tunescope.cli import main
from tunescope.data.sft import load_sft
from tunescope.data.sft_prepare import prepare_sft, sft_collator
from tunescope.data.tokenize import probe_batches
from tunescope.tasks.causal_lm import load_lm_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
FRACTIONS = [0.01, 0.1, 1.0]


def _nll(model, batch: dict, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """mean over positions t with keep[t] of -log p(labels[t] | x_<t), written out from the logits."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets, mask = labels[:, 1:], keep[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -(logp * mask).sum() / mask.sum()


def _kind_shares(model, batches, loss_of) -> dict[str, dict[float, float]]:
    """Per kind (last name component of the block weights): share of sum g^2 in the top floor(p n) + 1 entries."""
    model.zero_grad(set_to_none=True)
    model.train()
    sum(loss_of(b) for b in batches).backward()  # summed over batches, as accumulate_gradients does
    out = {}
    for kind in KINDS:
        sq = torch.cat([p.grad.reshape(-1).double() ** 2 for n, p in model.named_parameters()
                        if n.endswith(f".{kind}.weight")])
        cum = torch.sort(sq, descending=True).values.cumsum(0)
        out[kind] = {p: float(cum[min(math.floor(p * sq.numel()) + 1, sq.numel()) - 1] / cum[-1]) for p in FRACTIONS}
    return out


def test_sparsity_on_the_masked_sft_loss_per_kind(tmp_path, capsys):
    llama = save_tiny_llama(tmp_path / "llama")
    chat = write_jsonl(tmp_path / "chat.jsonl", messages_rows(40, choices=False))
    out = tmp_path / "sp"
    assert main(["sparsity", "--model", str(llama), "--data", str(chat), "--batch-size", "4", "--batches", "2",
                 "--max-length", "48", "--fractions", ",".join(map(str, FRACTIONS)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    res = results["sparsity"]
    assert results["task"] == "causal-lm"  # chosen from the messages column
    assert res["examples"] == 8  # sequences, not tokens
    assert list(res["per_kind"]) == KINDS
    assert res["overall"]["1.0"] == pytest.approx(1.0)
    assert sum(v["num_params"] for v in res["per_kind"].values()) == res["num_params"]
    for kind in KINDS:
        assert f"  {kind} " in printed

    # Independent: the same probe draw, a hand-written completion-only NLL, plain autograd.
    model, tok = load_lm_checkpoint(str(llama))
    prepared = prepare_sft(load_sft(str(chat), seed=0), tok, max_length=48)
    batches = probe_batches(prepared.tokenized["train"], tok, batch_size=4, num_batches=2, seed=0,
                            collate=sft_collator(tok))
    loss_tokens = sum(int((b["labels"] != -100).sum()) for b in batches)
    assert res["loss_tokens"] == loss_tokens < sum(int(b["attention_mask"].sum()) for b in batches) / 3
    sft = _kind_shares(model, batches, lambda b: _nll(model, b, b["labels"], b["labels"] != -100))
    every_token = _kind_shares(model, batches, lambda b: _nll(model, b, b["input_ids"], b["attention_mask"].bool()))
    for kind in KINDS:
        got = res["per_kind"][kind]
        assert 0 < got["entries_for_99"] <= 1
        for p in FRACTIONS:
            assert got["overall"][str(p)] == pytest.approx(sft[kind][p], rel=1e-5), (kind, p)
    assert any(res["per_kind"][k]["overall"]["0.01"] != pytest.approx(every_token[k][0.01], rel=1e-3) for k in KINDS)
