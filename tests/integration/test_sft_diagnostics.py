"""Per-layer diagnostics of decoders on the masked SFT loss (labels -100 outside the completion tokens).

Fast tier, on tiny random decoders of every decoder type the architecture contract supports, with a tiny chat
template: every registered metric is finite and in its bounds, the parameter-gradient norms equal an independent
loss.backward() of a hand-written completion-only NLL, and the prompt tokens contribute nothing. Then the same
measurement inside trl's SFTTrainer: `tunescope sft --diagnose --diagnose-every N`, and a DiagnosticsCallback in a
plain SFTTrainer built the way a user would; and `tunescope diagnose` on SFT data (plus --against an SFT run).
Slow tier: smollm2-135m on quartz.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.contract.test_architectures import DECODERS
from tests.unit._sft_helpers import (
    chat_tokenizer,
    messages_rows,
    save_tiny_llama,
    write_jsonl,
)
from tunescope.cli import main
from tunescope.data.sft import load_sft
from tunescope.data.sft_prepare import prepare_sft, sft_collator
from tunescope.data.tokenize import probe_batches
from tunescope.diagnostics.gradients import block_parameters
from tunescope.diagnostics.layerwise import layer_diagnostics
from tunescope.diagnostics.metrics import table_columns, within_bounds
from tunescope.models.layers import model_layout
from tunescope.models.tiny import tiny_causal_lm

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = 3


def _rows(n: int) -> list[dict]:
    """Conversations of two lengths (so batches hold padding); every third one has a second exchange, so its loss
    tokens sit in two separate assistant turns with a prompt turn between them."""
    rows = messages_rows(n, choices=False)
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["messages"] += [{"role": "user", "content": "thanks"}, {"role": "assistant", "content": "welcome"}]
    return rows


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("sft-diag") / "chat.jsonl", _rows(40))


@pytest.fixture(scope="module")
def probe(chat_file) -> list[dict]:
    """Two probe batches of 4 rows as trl trains on them: labels -100 on every non-assistant token and on padding."""
    tok = chat_tokenizer()
    prepared = prepare_sft(load_sft(str(chat_file), seed=0), tok, max_length=48)
    assert prepared.facts["loss_on"] == "assistant turns"
    batches = probe_batches(prepared.tokenized["train"], tok, batch_size=4, num_batches=2, seed=0,
                            collate=sft_collator(tok))
    for batch in batches:
        real, loss = batch["attention_mask"].bool(), batch["labels"] != -100
        assert not (loss & ~real).any()  # padding carries no loss
        assert (real & ~loss).sum() > 2 * loss.sum()  # most real tokens are prompt tokens, masked out
    assert any((batch["attention_mask"] == 0).any() for batch in batches)  # rows of two lengths: padding
    return batches


def _completion_nll(model, batch: dict, labels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """mean over the positions t with keep[t] of -log p(labels[t] | x_<t), from the logits (written out here, not
    the model's loss function): the SFT loss when `keep` marks the completion tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    targets, mask = labels[:, 1:], keep[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return -(logp * mask).sum() / mask.sum()


def _block_grad_norms(model, loss_of) -> list[float]:
    """||dL/dtheta_l||_2 per block after an ordinary backward of L = mean over the probe batches of loss_of(b)."""
    layout = model_layout(model)
    params, groups = block_parameters(model, layout.block_prefixes)
    model.zero_grad(set_to_none=True)
    loss_of().backward()
    sums = [0.0] * layout.num_layers
    for p, g in zip(params, groups):
        if p.grad is not None:
            sums[g] += float(p.grad.double().pow(2).sum())
    model.zero_grad(set_to_none=True)
    return [math.sqrt(s) for s in sums]


@pytest.mark.parametrize("arch", DECODERS)
def test_every_metric_on_the_masked_sft_loss(arch, probe):
    model = tiny_causal_lm(arch, chat_tokenizer(), num_layers=LAYERS, seed=1)
    rows, _ = layer_diagnostics(model, probe)
    assert len(rows) == LAYERS
    recorded = [col for metric, col in table_columns() if metric.recorded]
    for row in rows:
        for col in recorded:  # every key of every registered metric: finite and inside its declared bounds
            assert within_bounds(col, row[col.key]), (arch, col.key, row)
    model.eval()  # what the diagnostics measure in (no dropout)

    def sft_loss():
        return sum(_completion_nll(model, b, b["labels"], b["labels"] != -100) for b in probe) / len(probe)

    reference = _block_grad_norms(model, sft_loss)
    for row, norm in zip(rows, reference):
        assert row["param_grad_norm"] == pytest.approx(norm, rel=1e-5), (arch, row["layer"])

    # The prompt tokens contribute nothing: give every masked prompt position an arbitrary real label and keep it
    # out of the loss with the completion mask -> the same gradients; put those tokens into the loss -> others.
    def garbled(b: dict) -> torch.Tensor:
        noise = torch.randint(0, int(b["input_ids"].max()) + 1, b["labels"].shape,
                              generator=torch.Generator().manual_seed(7))
        return torch.where(b["labels"] == -100, noise, b["labels"])

    prompt_relabelled = _block_grad_norms(model, lambda: sum(
        _completion_nll(model, b, garbled(b), b["labels"] != -100) for b in probe) / len(probe))
    every_token = _block_grad_norms(model, lambda: sum(
        _completion_nll(model, b, b["input_ids"], b["attention_mask"].bool()) for b in probe) / len(probe))
    for row, same, other in zip(rows, prompt_relabelled, every_token):
        assert row["param_grad_norm"] == pytest.approx(same, rel=1e-5)
        assert row["param_grad_norm"] != pytest.approx(other, rel=1e-3)


# --- inside trl's SFTTrainer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("sft-diag-llama"))


def _sft_run(model: Path, data: Path, out: Path, *extra: str) -> dict:
    argv = ["sft", "--model", str(model), "--data", str(data), "--out", str(out), "--strategy", "lora",
            "--max-steps", "4", "--batch-size", "8", "--eval-batch-size", "16", "--max-length", "48",
            "--logging-steps", "1", "--lr", "5e-3", "--rank", "4", "--probe-batches", "2", "--probe-batch-size", "4",
            *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def _diag_logs(out: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if any(k.startswith("diag/") for k in r)}


@pytest.fixture(scope="module")
def diagnosed_run(tiny_llama, chat_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft-diag-run") / "run"
    _sft_run(tiny_llama, chat_file, out, "--diagnose", "--diagnose-every", "2")
    return out


def test_sft_diagnoses_before_during_and_after_without_changing_training(diagnosed_run, tiny_llama, chat_file,
                                                                           tmp_path):
    results = json.loads((diagnosed_run / "results.json").read_text())
    recorded = [col for metric, col in table_columns() if metric.recorded]
    logs = _diag_logs(diagnosed_run)
    assert sorted(logs) == [2, 4]
    for entry in logs.values():  # every key of every registered metric, for every layer
        for layer in range(2):
            for col in recorded:
                assert math.isfinite(entry[f"diag/layer_{layer:02d}/{col.key}"]), col.key
    assert logs[2]["diag/layer_00/param_grad_norm"] != logs[4]["diag/layer_00/param_grad_norm"]  # it trained
    before, after = results["diagnostics"]["layers"], results["diagnostics_after"]["layers"]
    assert len(before) == len(after) == 2 and all(0.0 < r["delta_cka"] <= 1.0 for r in before)
    # The probe batches of the tables and of the callback are the same (drawn once): the callback's step-4
    # measurement is the fine-tuned table.
    for row in after:
        assert logs[4][f"diag/layer_{row['layer']:02d}/param_grad_norm"] == pytest.approx(row["param_grad_norm"],
                                                                                         rel=1e-6)
    # Measuring does not change training: the same adapter, bit for bit, as a run without diagnostics.
    plain = tmp_path / "plain"
    plain_results = _sft_run(tiny_llama, chat_file, plain)
    a = load_file(diagnosed_run / "checkpoints" / "final" / "adapter_model.safetensors")
    b = load_file(plain / "checkpoints" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert plain_results["eval"]["loss"] == results["eval"]["loss"]
    assert "diagnostics" not in plain_results and not _diag_logs(plain)


def test_callback_in_a_users_own_sfttrainer(tiny_llama, chat_file, tmp_path):
    """The README recipe: probe batches from the SFTTrainer's own prepared data and collator."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunescope.training.callbacks import DiagnosticsCallback

    rows = [json.loads(line) for line in chat_file.read_text().splitlines()]

    def train(with_callback: bool):
        tok = AutoTokenizer.from_pretrained(tiny_llama)
        model = AutoModelForCausalLM.from_pretrained(tiny_llama)
        args = SFTConfig(output_dir=str(tmp_path / str(with_callback)), max_steps=4, per_device_train_batch_size=8,
                         learning_rate=5e-3, logging_steps=100, report_to=[], use_cpu=True, save_strategy="no",
                         assistant_only_loss=True, max_length=48, seed=0, disable_tqdm=True)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
        cb = None
        if with_callback:
            probe = probe_batches(trainer.train_dataset, tok, batch_size=4, num_batches=2, seed=0,
                                  collate=trainer.data_collator)
            assert all(((b["labels"] == -100) & (b["attention_mask"] == 1)).any() for b in probe)  # prompts masked
            cb = DiagnosticsCallback(probe, every_n_steps=2)
            trainer.add_callback(cb)
        trainer.train()
        return model, trainer, cb

    model, trainer, cb = train(True)
    entries = [e for e in trainer.state.log_history if any(k.startswith("diag/") for k in e)]
    assert [e["step"] for e in entries] == [2, 4] and [h["step"] for h in cb.history] == [2, 4]
    recorded = [col for metric, col in table_columns() if metric.recorded]
    assert all(math.isfinite(entries[0][f"diag/layer_01/{col.key}"]) for col in recorded)
    plain, _, _ = train(False)
    for (name, p), (_, q) in zip(model.named_parameters(), plain.named_parameters()):
        assert torch.equal(p, q), name


# --- tunescope diagnose on SFT data ---------------------------------------------------------------------------

def test_diagnose_command_on_sft_data_uses_the_sft_loss(tiny_llama, chat_file, diagnosed_run, tmp_path, capsys):
    out = tmp_path / "diag"
    capsys.readouterr()
    assert main(["diagnose", "--model", str(tiny_llama), "--data", str(chat_file), "--max-length", "48",
                 "--probe-batches", "2", "--probe-batch-size", "4", "--against", str(diagnosed_run),
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "causal-lm"  # detected from the messages column
    found = results["diagnostics"]
    assert 0 < found["probe_loss_tokens"] < found["probe_tokens"] / 3
    assert "SFT loss on the assistant turns tokens" in capsys.readouterr().out
    # The same numbers as the pipeline measured directly on the SFT probe batches of the same draw
    from tunescope.tasks.causal_lm import load_lm_checkpoint

    model, tok = load_lm_checkpoint(str(tiny_llama))
    prepared = prepare_sft(load_sft(str(chat_file), seed=0), tok, max_length=48)
    probe = probe_batches(prepared.tokenized["train"], tok, batch_size=4, num_batches=2, seed=0,
                          collate=sft_collator(tok))
    rows, _ = layer_diagnostics(model, probe)
    for got, want in zip(found["layers"], rows):
        for key in ("attn_entropy", "act_grad_norm", "param_grad_norm", "attn_sink_share"):
            assert got[key] == pytest.approx(want[key], rel=1e-6), key
    # --against the LoRA run: its final adapter on the same base; LoRA moved every block
    assert all(0.0 < r["delta_cka"] <= 1.0 for r in found["layers"])


def test_diagnose_task_flag_and_bad_values(tiny_llama, chat_file, tmp_path, capsys):
    csv = tmp_path / "plain.csv"
    csv.write_text("text,label\n" + "".join(f"the sky is blue {i},{i % 2}\n" for i in range(20)), encoding="utf-8")
    argv = ["diagnose", "--model", str(tiny_llama), "--max-length", "48", "--probe-batches", "1"]
    assert main([*argv, "--data", str(chat_file), "--task", "classification", "--out", str(tmp_path / "a")]) == 2
    assert main([*argv, "--data", str(chat_file), "--task", "causal", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "task" in err and "classification, causal-lm" in err
    # plain text as SFT data (every token a loss token) only when asked
    assert main([*argv, "--data", str(csv), "--task", "causal-lm", "--out", str(tmp_path / "c")]) == 0
    found = json.loads((tmp_path / "c" / "results.json").read_text())
    assert found["task"] == "causal-lm" and found["preparation"]["loss_on"] == "all tokens"


# --- slow tier: the real smollm2-135m on quartz ---------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_quartz_diagnose_and_sft_with_diagnostics(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "--model", "smollm2-135m", "--data", "quartz", "--max-length", "96", "--limit", "16",
                 "--probe-batches", "1", "--probe-batch-size", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    found = results["diagnostics"]
    assert results["task"] == "causal-lm" and len(found["layers"]) == 30
    recorded = [col for metric, col in table_columns() if metric.recorded]
    for row in found["layers"]:
        for col in recorded:
            assert within_bounds(col, row[col.key]), (col.key, row)
        assert 0.0 < row["attn_entropy_norm"] < 1.0  # a trained model: neither uniform nor one-hot
    assert found["probe_loss_tokens"] == 2 * 3  # the answer letter, <|im_end|> and a newline per question

    run = tmp_path / "sft"
    assert main(["sft", "--model", "smollm2-135m", "--data", "quartz", "--strategy", "lora", "--max-steps", "2",
                 "--batch-size", "2", "--max-length", "96", "--limit", "8", "--eval-batch-size", "8",
                 "--probe-batches", "1", "--probe-batch-size", "2", "--diagnose-every", "1",
                 "--answer-max-new-tokens", "2", "--out", str(run)]) == 0
    logs = _diag_logs(run)
    assert sorted(logs) == [1, 2]
    for layer in (0, 29):
        for col in recorded:
            assert math.isfinite(logs[2][f"diag/layer_{layer:02d}/{col.key}"]), col.key


# --- retention: next-token accuracy beside perplexity ---------------------------------------------------------

def test_retention_accuracy_is_the_share_of_right_next_token_guesses(tmp_path):
    """results.json `retention.accuracy_before/after` = mean over the predicted tokens of the held-out blocks of
    [argmax_v p(v | x_<t) = x_t], checked against the logits; training on the blocks must raise it."""
    from types import SimpleNamespace

    from tunescope.training.addons import RunState
    from tunescope.training.retention import Retention

    tok = chat_tokenizer()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join("the sky is blue the grass is green the sun is yellow\n" for _ in range(40)),
                      encoding="utf-8")  # 40 documents, 2 held out (5%)
    model = tiny_causal_lm("llama", tok, num_layers=2, seed=3)
    config = SimpleNamespace(retention_data=str(corpus), retention_docs=2, seed=0, max_length=12, eval_batch_size=4)
    run = RunState(config=config, out_dir=tmp_path, model=model, tokenizer=tok, data=None, tokenized={},
                   collator=sft_collator(tok), results={}, base_model_factory=lambda: None)
    addon = Retention()
    addon.before_train(run)
    ids = torch.tensor(run.extras["retention_blocks"]["input_ids"])

    def share_right() -> float:
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        return float((logits[:, :-1].argmax(-1) == ids[:, 1:]).double().mean())

    before = share_right()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):  # fit the held-out text itself: the next-token guesses must get better
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    addon.after_train(run)
    facts = run.results["retention"]
    assert facts["tokens"] == ids.numel() - ids.shape[0]  # every token of a block but its first is predicted
    assert facts["accuracy_before"] == pytest.approx(before, abs=1e-12)
    assert facts["accuracy_after"] == pytest.approx(share_right(), abs=1e-12)
    assert facts["accuracy_after"] > facts["accuracy_before"] + 0.3
