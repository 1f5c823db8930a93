"""One registration reaches every reader: `tunescope diagnose` (results.json, printed table, report.html, the
--metrics choices) and DiagnosticsCallback logs show attn_sink_share and a metric defined only in test code."""

import json
import math

import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from tests.unit._layer_metric_helpers import TOY, TOY_METRIC, registered
from tunescope.cli import main
from tunescope.diagnostics.metrics import table_columns, within_bounds
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment
from tunescope.training.callbacks import DiagnosticsCallback

pytestmark = pytest.mark.usefixtures("one_thread")
SINK = "attn_sink_share"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric-assets")
    texts, labels = toy_sentiment(40, seed=6)
    tok = tiny_tokenizer(texts)
    tiny_classifier("bert", tok, seed=0).save_pretrained(root / "m")
    tok.save_pretrained(root / "m")
    pd.DataFrame({"text": texts, "label": labels}).to_csv(root / "toy.csv", index=False)
    return root


def _diagnose(assets, out, *extra) -> int:
    return main(["diagnose", "--model", str(assets / "m"), "--data", str(assets / "toy.csv"), "--probe-batches", "1",
                 "--probe-batch-size", "8", "--out", str(out), *extra])


def test_registered_metrics_reach_results_printout_and_report(assets, tmp_path, capsys):
    with registered():
        assert _diagnose(assets, tmp_path / "run") == 0
        columns = {c.key: c for _, c in table_columns()}
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["diagnostics"]["layers"]
    for row in rows:
        for key in (SINK, TOY, "attn_entropy", "param_grad_rel"):
            assert within_bounds(columns[key], row[key]), (key, row[key])
    header = capsys.readouterr().out.splitlines()[0]
    assert SINK[:10] in header and TOY in header
    report = (tmp_path / "run" / "report.html").read_text()
    for key in (SINK, TOY):  # a panel (titled in the figure's alt text), a table column, a definition row
        assert columns[key].title in report and f"<th>{key}</th>" in report and columns[key].description in report


def test_metrics_option_choices_come_from_the_registry(assets, tmp_path, capsys):
    with registered():
        assert main(["diagnose", "--help"]) == 0
        helped = " ".join(capsys.readouterr().out.split())
        assert f"{SINK} (attention sink share S_l)" in helped and f"{TOY} ({TOY_METRIC.label})" in helped
        assert _diagnose(assets, tmp_path / "only", "--metrics", f"{TOY},{SINK}") == 0
    row = json.loads((tmp_path / "only" / "results.json").read_text())["diagnostics"]["layers"][0]
    # the selection's inputs are always recorded; nothing else
    assert set(row) == {"layer", TOY, SINK, "attn_entropy", "attn_entropy_norm", "act_grad_norm"}
    capsys.readouterr()
    assert _diagnose(assets, tmp_path / "bad", "--metrics", "attn_sink") == 2
    err = capsys.readouterr().err
    assert "attn_sink" in err and SINK in err


def test_callback_logs_every_key_of_the_registered_metrics(assets, tmp_path):
    texts, labels = toy_sentiment(16, seed=7)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok, seed=0)
    enc = tok(texts[:8], padding=True, return_tensors="pt")
    probe = [{**enc, "labels": torch.tensor(labels[:8])}]
    ds = Dataset.from_dict({"text": texts, "label": labels}).map(
        lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"])
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8,
                             logging_steps=100, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    with registered():
        cb = DiagnosticsCallback(probe, every_n_steps=1)
        trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok),
                          callbacks=[cb])
        trainer.train()
        keys = [c.key for m, c in table_columns() if m.recorded]
    logged = next(e for e in trainer.state.log_history if any(k.startswith("diag/") for k in e))
    assert TOY in keys and SINK in keys
    for layer in range(4):
        for key in keys:
            assert math.isfinite(logged[f"diag/layer_{layer:02d}/{key}"]), key
