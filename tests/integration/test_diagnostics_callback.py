"""DiagnosticsCallback in a real transformers Trainer run: keys in the logs, training itself unchanged."""

import math

import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment
from tunescope.training.callbacks import DiagnosticsCallback


class _Seen(TrainerCallback):
    """Stands in for a reporting integration (TensorBoard / W&B): records what on_log receives."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def _train(tmp_path, tok, texts, labels, callback=None):
    model = tiny_classifier("bert", tok, seed=0)
    ds = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8,
                             learning_rate=1e-3, logging_steps=100, report_to=[], use_cpu=True, save_strategy="no",
                             seed=0, disable_tqdm=True)
    seen = _Seen()
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok),
                      callbacks=[seen] + ([callback] if callback else []))
    trainer.train()  # no attach(): the callback moves itself ahead of the reporters
    return model, trainer, seen


def test_callback_logs_its_keys_and_leaves_training_unchanged(tmp_path):
    texts, labels = toy_sentiment(32)
    tok = tiny_tokenizer(texts)
    enc = tok(texts[:8], padding=True, return_tensors="pt")
    probe = [{**enc, "labels": torch.tensor(labels[:8])}]
    cb = DiagnosticsCallback(probe, every_n_steps=2)
    model, trainer, seen = _train(tmp_path / "a", tok, texts, labels, cb)
    diag_logs = [e for e in trainer.state.log_history if any(k.startswith("diag/") for k in e)]
    assert [e["step"] for e in diag_logs] == [2, 4]
    for layer in range(4):
        for metric in ("attn_entropy", "attn_entropy_norm", "act_grad_norm", "param_grad_norm", "param_grad_rel"):
            key = f"diag/layer_{layer:02d}/{metric}"
            assert math.isfinite(diag_logs[0][key])
    # a callback registered before ours (as reporters are) still sees the keys, without attach()
    assert sum(any(k.startswith("diag/") for k in e) for e in seen.logs) == 2
    assert [h["step"] for h in cb.history] == [2, 4]
    # The measurement changed the profile between steps (the model trained) ...
    assert cb.history[0]["layers"][0]["param_grad_norm"] != cb.history[1]["layers"][0]["param_grad_norm"]
    # ... and did not disturb training: same weights as a run without the callback.
    plain, _, _ = _train(tmp_path / "b", tok, texts, labels)
    for (n, p), (_, q) in zip(model.named_parameters(), plain.named_parameters()):
        assert torch.equal(p, q), n


def test_callback_logs_only_the_metrics_asked_for(tmp_path):
    texts, labels = toy_sentiment(32)
    tok = tiny_tokenizer(texts)
    enc = tok(texts[:8], padding=True, return_tensors="pt")
    cb = DiagnosticsCallback([{**enc, "labels": torch.tensor(labels[:8])}], every_n_steps=2, metrics=["attn_entropy"])
    _, _, seen = _train(tmp_path, tok, texts, labels, cb)
    keys = {k.split("/")[-1] for e in seen.logs for k in e if k.startswith("diag/")}
    assert keys == {"attn_entropy", "attn_entropy_norm"}
