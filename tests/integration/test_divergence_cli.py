"""No garbage recorded as success, through `tunescope finetune` end to end.

A huge learning rate stops the run (exit 2, one line naming step, loss, learning rate and what to do) even when
the step that diverges is never logged, and leaves no results.json or report. A classifier that collapsed onto
one class is flagged in results.json, on stdout and at the top of report.html; a healthy run and a data set that
really is that skewed are not.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from tunescope.cli import main


def _finetune(model_dir, csv, out, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model_dir), "--data", str(csv), "--out", str(out), "--no-feature-change",
            *extra]


def _error_line(err: str) -> str:
    """The CLI's error line: stderr's last line (after the closed progress bar)."""
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1]


@pytest.mark.parametrize(("strategy", "step", "what"), [
    ("full", 3, "the loss became nan"),
    ("lora", 8, "is over 10x its starting value 0.69"),  # 1e5-1e6 nats from step 3 to the last step, 8
])
def test_huge_learning_rate_stops_the_run(tiny_model_dir, toy_csv, tmp_path, capsys, strategy, step, what):
    """8 optimizer steps with the default logging_steps=10: no training loss is ever logged before the end, so
    only a per-step check sees the blow-up (from step 3: step 1 is a warm-up step at learning rate 0)."""
    out = tmp_path / "run"
    assert main(_finetune(tiny_model_dir["bert"], toy_csv, out, "--strategy", strategy, "--lr", "1e6")) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"tunescope: error: training diverged at step {step}: ") and what in line
    assert "configured learning_rate 1e+06); lower learning_rate (e.g. learning_rate=100000)" in line
    assert not (out / "results.json").exists() and not (out / "report.html").exists()
    assert (out / "config.yaml").is_file()
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == step and last["message"] in line
    assert main(["report", str(out)]) == 2  # nothing to report: the run is not finished


@pytest.fixture(scope="module")
def one_class_model(tiny_model_dir, tmp_path_factory):
    """The tiny BERT with its head zeroed and biased to class 0: it predicts class 0 for every input."""
    from tunescope.models.layers import model_layout
    from tunescope.models.load import load_classifier

    model, tokenizer = load_classifier(str(tiny_model_dir["bert"]), 2)
    head = model_layout(model).head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([8.0, -8.0]))
    folder = tmp_path_factory.mktemp("one-class")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# One optimizer step at a negligible learning rate: the planted head is what gets evaluated.
UNTRAINED = ("--strategy", "full", "--max-steps", "1", "--lr", "1e-12")


def test_collapsed_classifier_is_flagged(one_class_model, toy_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_finetune(one_class_model, toy_csv, out, *UNTRAINED)) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    [warning] = results["warnings"]
    assert warning["kind"] == "collapse" and warning["predicted_share"] == 1.0 and warning["majority_share"] == 0.5
    assert results["baseline"]["accuracy"] == 0.5 and results["eval"]["accuracy"] == 0.5
    assert f"warning: {warning['message']}" in printed.splitlines()
    assert "(majority-class baseline 0.5000)" in printed
    page = (out / "report.html").read_text()
    assert page.index('<section id="warnings">') == page.index("<section") < page.index('<section id="overview">')


def test_skewed_data_set_is_not_flagged(one_class_model, tmp_path):
    """390 of 400 rows are class 0 (stratified split: 39 of the 40 test rows): always predicting 0 is right."""
    texts = [f"text number {i}" for i in range(400)]
    csv = tmp_path / "skewed.csv"
    pd.DataFrame({"text": texts, "label": [1 if i % 40 == 0 else 0 for i in range(400)]}).to_csv(csv, index=False)
    out = tmp_path / "run"
    assert main(_finetune(one_class_model, csv, out, *UNTRAINED, "--max-length", "8")) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["warnings"] == []
    assert results["baseline"] == {"majority_class": 0, "majority_label": "0", "accuracy": 0.975}
    assert results["eval"]["accuracy"] == 0.975
    assert 'id="warnings"' not in (out / "report.html").read_text()


def test_healthy_run_is_not_flagged(tiny_model_dir, toy_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_finetune(tiny_model_dir["llama"], toy_csv, out, "--strategy", "full", "--lr", "1e-3")) == 0
    assert "warning:" not in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["warnings"] == [] and results["eval"]["accuracy"] > results["baseline"]["accuracy"]


def test_compare_carries_the_warnings_and_names_a_diverged_run(one_class_model, tiny_model_dir, toy_csv, tmp_path):
    """Through the recipe (the API `tunescope compare` calls): the collapsed sub-run's warning reaches the
    comparison's results.json (tagged with its run), its row, and the top of its report; a diverged sub-run stops
    the comparison with the run named."""
    from tunescope.errors import TrainingDivergedError
    from tunescope.experiments.compare import run_compare
    from tunescope.experiments.finetune import FinetuneConfig

    base = FinetuneConfig(model=str(one_class_model), data=str(toy_csv), max_steps=1, learning_rate=1e-12,
                          feature_change=False)
    out = tmp_path / "cmp"
    results = run_compare(base, ["full"], [0], out)
    [warning] = results["warnings"]
    assert warning["kind"] == "collapse" and warning["run"] == "full-seed0"
    assert warning["message"].startswith("full-seed0: the model collapsed to one class")
    [row] = results["comparison"]["runs"]
    assert row["warnings"] == ["collapse"] and row["baseline_accuracy"] == 0.5
    page = (out / "report.html").read_text()
    assert page.index('<section id="warnings">') == page.index("<section")

    diverging = FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), learning_rate=1e6,
                               feature_change=False)
    with pytest.raises(TrainingDivergedError, match=r"^compare run full-seed0: training diverged at step 3: "):
        run_compare(diverging, ["full"], [0], tmp_path / "cmp-diverged")
    assert not (tmp_path / "cmp-diverged" / "results.json").exists()
    assert not (tmp_path / "cmp-diverged" / "full-seed0" / "results.json").exists()
