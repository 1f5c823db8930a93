"""`tunescope evaluate RUN_OR_MODEL --data X` end to end through main([...]) on tiny random models and tiny local data:
tiny finetune / sft runs evaluated on their own data give back their own test metrics exactly (from the run
directory, the adapter folder, the SIFT delta and its SHiRA export), the majority-class baseline is right on a known
label mix, an SFT run sits beside its base model's numbers, and bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.unit._sft_helpers import messages_rows, save_tiny_llama, write_jsonl
from tunescope.cli import main
from tunescope.models.tiny import toy_sentiment

CLASSIFICATION_KEYS = ("accuracy", "nll", "ece", "mce", "brier")
SFT_KEYS = ("loss", "perplexity", "mean_token_accuracy", "tokens", "examples", "task_accuracy_loglik",
            "task_accuracy_generate", "task_examples")


def _finetune(model: Path, data: Path, out: Path, strategy: str) -> Path:
    from tunescope.experiments.finetune import FinetuneConfig, finetune

    config = FinetuneConfig(model=str(model), data=str(data), strategy=strategy, max_steps=4, batch_size=16,
                            learning_rate=2e-2, lora_dropout=0.0, feature_change=False, logging_steps=2)
    finetune(config, out, write_report=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, toy_csv) -> dict[str, Path]:
    """A LoRA and a SIFT run (4 steps each) of the tiny BERT on the toy csv."""
    root = tmp_path_factory.mktemp("evaluate-runs")
    return {s: _finetune(tiny_model_dir["bert"], toy_csv, root / s, s) for s in ("lora", "sift")}


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> dict[str, Path]:
    """A 2-step LoRA SFT run of a tiny Llama on toy two-choice chats, with the base model's numbers (eval_before)."""
    from tunescope.experiments.sft import SFTConfig, sft

    root = tmp_path_factory.mktemp("evaluate-sft")
    model = save_tiny_llama(root / "llama")
    data = write_jsonl(root / "chat.jsonl", messages_rows(40))
    config = SFTConfig(model=str(model), data=str(data), strategy="lora", max_steps=2, batch_size=8,
                       eval_batch_size=16, max_length=48, learning_rate=5e-3, lora_rank=4, lora_dropout=0.0,
                       eval_before=True)
    sft(config, root / "run", write_report=False)
    return {"run": root / "run", "data": data, "model": model}


def _evaluate(capsys, *argv: str) -> dict:
    """Run `tunescope evaluate ... --json -q`; the evaluation printed as the last stdout line."""
    capsys.readouterr()
    assert main(["evaluate", *argv, "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("strategy, where, kind", [
    ("lora", "", "run"),
    ("lora", "checkpoints/final", "adapter"),  # the PEFT LoRA adapter folder alone
    ("sift", "", "run"),
    ("sift", "checkpoints/final", "sift-delta"),
    ("sift", "checkpoints/final-peft", "adapter"),  # the SHiRA export
])
def test_classifier_gives_back_its_own_test_metrics(runs, toy_csv, tmp_path, monkeypatch, capsys, strategy, where,
                                                    kind):
    run = runs[strategy]
    monkeypatch.chdir(tmp_path)  # nothing may be written here either
    before = _snapshot(run)
    evaluation = _evaluate(capsys, str(run / where), "--data", str(toy_csv))
    results = _results(run)
    assert evaluation["kind"] == kind and evaluation["task"] == "classification" and evaluation["split"] == "test"
    for key in CLASSIFICATION_KEYS:  # the same test split, the same weights, the same arithmetic
        assert evaluation["eval"][key] == results["eval"][key], key
    assert evaluation["eval"]["examples"] == results["data_sizes"]["test"]
    assert {k: evaluation["baseline"][k] for k in results["baseline"]} == results["baseline"]
    assert _snapshot(run) == before and list(tmp_path.iterdir()) == []  # no evaluation.json without --out


def test_out_gets_the_printed_evaluation(runs, toy_csv, tmp_path, capsys):
    evaluation = _evaluate(capsys, str(runs["lora"]), "--data", str(toy_csv), "--out", str(tmp_path / "ev"))
    assert [p.name for p in (tmp_path / "ev").iterdir()] == ["evaluation.json"]
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text()) == evaluation
    assert evaluation["command"] == "evaluate" and evaluation["run"]["strategy"] == "lora"
    assert "versions" in evaluation and evaluation["seed"] == 0 and evaluation["max_length"] == 64


def test_table_for_humans(runs, toy_csv, capsys):
    assert main(["evaluate", str(runs["lora"]), "--data", str(toy_csv), "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(finetune run, strategy lora)" in lines[0] and "test split: 16 examples" in lines[0]
    assert lines[1].split()[:2] == ["metric", "model"] and "majority class '0'" in lines[1]
    accuracy = _results(runs["lora"])["eval"]["accuracy"]
    assert lines[2].split() == ["accuracy", f"{accuracy:.4f}", "0.5000"]  # the toy test split is 8 / 8


@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory) -> Path:
    """80 labelled rows, 20 of class 0 and 60 of class 1 (each class >= 10 rows: the split is stratified)."""
    texts, _ = toy_sentiment(80, seed=1)
    path = tmp_path_factory.mktemp("mix") / "mix.csv"
    pd.DataFrame({"text": texts, "label": [0] * 20 + [1] * 60}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("split, examples", [("test", 8), ("validation", 8), ("train", 64), ("all", 80)])
def test_majority_baseline_on_a_known_label_mix(runs, mixed_csv, capsys, split, examples):
    """Class 1 holds 3/4 of the rows and, the split being stratified, 3/4 of every split: the baseline always
    predicts class 1 and scores exactly 0.75."""
    evaluation = _evaluate(capsys, str(runs["lora"]), "--data", str(mixed_csv), "--split", split)
    assert evaluation["baseline"] == {"kind": "majority-class", "majority_class": 1, "majority_label": "1",
                                      "accuracy": 0.75}
    assert evaluation["eval"]["examples"] == examples
    assert evaluation["data_sizes"] == {"train": 64, "validation": 8, "test": 8}


def test_limit_batch_size_and_max_length(runs, mixed_csv, capsys):
    evaluation = _evaluate(capsys, str(runs["lora"]), "--data", str(mixed_csv), "--limit", "5", "--batch-size", "2",
                           "--max-length", "8")
    assert evaluation["eval"]["examples"] == 5 and evaluation["limit"] == 5
    assert evaluation["batch_size"] == 2 and evaluation["max_length"] == 8


def test_sft_run_gives_back_its_numbers_beside_the_base_model(sft_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    results = _results(sft_run["run"])
    evaluation = _evaluate(capsys, str(sft_run["run"]), "--data", str(sft_run["data"]))
    assert evaluation["task"] == "causal-lm" and evaluation["base_model"] == str(sft_run["model"])
    base = evaluation["baseline"]
    assert base["kind"] == "base-model"
    for key in SFT_KEYS:
        assert evaluation["eval"][key] == results["eval"][key], key
        assert base[key] == results["eval_before"][key], key  # sft computed those on the pre-trained model
    assert list(tmp_path.iterdir()) == []
    adapter = _evaluate(capsys, str(sft_run["run"] / "checkpoints" / "final"), "--data", str(sft_run["data"]),
                        "--max-length", "48", "--no-base")
    assert adapter["kind"] == "adapter" and adapter["baseline"] is None
    assert adapter["eval"]["loss"] == results["eval"]["loss"]


def test_sft_split_all_is_the_three_splits_together(sft_run, capsys):
    """Over all rows, each metric is the count-weighted mean of the three splits' (3 rows each with --limit 3); the
    task accuracies also check that each row is scored against its own question and choices."""
    def ev(split: str) -> dict:
        return _evaluate(capsys, str(sft_run["run"]), "--data", str(sft_run["data"]), "--split", split, "--limit",
                         "3", "--no-base")["eval"]

    parts, together = [ev(s) for s in ("train", "validation", "test")], ev("all")
    assert together["examples"] == together["task_examples"] == 9
    assert together["tokens"] == sum(p["tokens"] for p in parts)
    assert together["loss"] == pytest.approx(sum(p["loss"] * p["tokens"] for p in parts) / together["tokens"])
    for key in ("task_accuracy_loglik", "task_accuracy_generate"):
        assert together[key] == pytest.approx(sum(p[key] for p in parts) / 3), key


def _one_error_line(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tunescope: error:"), err
    return err


@pytest.mark.parametrize("labels, shown", [
    ([0, 1, 2], "has 3 labels ['0', '1', '2']"),
    (["neg", "pos"], "has 2 labels ['neg', 'pos']"),
])
def test_label_mismatch_names_both(runs, tmp_path, capsys, labels, shown):
    data = tmp_path / "other.csv"
    pd.DataFrame({"text": [f"word {i}" for i in range(60)], "label": [labels[i % len(labels)] for i in
                                                                       range(60)]}).to_csv(data, index=False)
    err = _one_error_line(capsys, str(runs["lora"]), "--data", str(data))
    assert f"label mismatch: '{runs['lora']}' predicts 2 labels ['0', '1']" in err and shown in err


def test_wrong_kind_of_data(runs, sft_run, toy_csv, capsys):
    err = _one_error_line(capsys, str(runs["lora"]), "--data", str(sft_run["data"]))
    assert "it holds SFT (messages) data" in err and "is a classifier" in err
    err = _one_error_line(capsys, str(runs["lora"]), "--data", "quartz")
    assert "it is the named sft asset" in err and "expected classification data: rotten_tomatoes" in err
    err = _one_error_line(capsys, str(sft_run["run"]), "--data", str(toy_csv))
    assert "it holds classification (text + label columns) data" in err and "is a causal LM" in err
    err = _one_error_line(capsys, str(sft_run["run"]), "--data", "rotten_tomatoes")
    assert "it is the named classification asset" in err and "expected sft data: quartz" in err


def test_not_a_run_nor_a_model(runs, tmp_path, toy_csv, capsys):
    (tmp_path / "empty").mkdir()
    assert "neither a finished run directory" in _one_error_line(capsys, str(tmp_path / "empty"), "--data",
                                                                 str(toy_csv))
    assert "it is a file" in _one_error_line(capsys, str(toy_csv), "--data", str(toy_csv))
    assert "it does not exist" in _one_error_line(capsys, str(tmp_path / "nowhere"), "--data", str(toy_csv))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((runs["lora"] / "config.yaml").read_text())
    assert "has no results.json" in _one_error_line(capsys, str(unfinished), "--data", str(toy_csv))
