"""`tunescope sft` end to end through main([...]) on a tiny Llama with a tiny chat template: LoRA and SIFT runs,
their saved checkpoints reloaded to the same evaluation numbers, and bad input refused with exit 2 and one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit._sft_helpers import PLAIN_TEMPLATE, messages_rows, pair_rows, save_tiny_llama, write_jsonl
from tunescope.cli import main
from tunescope.config import build_config, load_yaml


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("sft-llama"))


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("sft-data") / "chat.jsonl", messages_rows(40))


def _run(model: Path, data: Path, out: Path, strategy: str, *extra: str) -> dict:
    argv = ["sft", "--model", str(model), "--data", str(data), "--out", str(out), "--strategy", strategy,
            "--max-steps", "4", "--batch-size", "8", "--eval-batch-size", "16", "--max-length", "48",
            "--logging-steps", "1", "--epochs", "1", *extra]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def _reloaded_eval(out: Path) -> dict:
    """The test-split evaluation of the saved checkpoints/final, loaded afresh."""
    from tunescope.experiments.sft import SFTConfig
    from tunescope.tasks import TASKS

    config = build_config(SFTConfig, load_yaml(out / "config.yaml"))
    task = TASKS.get("causal-lm")
    loaded = task.load(config, model_source=str(out / "checkpoints" / "final"))
    return task.evaluate(loaded.model, loaded, "test", config.eval_batch_size).metrics


@pytest.mark.parametrize("strategy, extra, weights", [
    ("lora", ("--lr", "5e-3", "--rank", "4", "--lora-dropout", "0"), "adapter_model.safetensors"),
    ("sift", ("--lr", "5e-3", "--sift-rate", "0.05"), "sift_delta.safetensors"),
])
def test_sft_trains_saves_and_reloads_to_the_same_numbers(tiny_llama, chat_data, tmp_path, capsys, strategy, extra,
                                                          weights):
    out = tmp_path / strategy
    results = _run(tiny_llama, chat_data, out, strategy, *extra)
    printed = capsys.readouterr().out
    assert "test loss" in printed and "task accuracy: generate" in printed and "report:" in printed
    assert results["task"] == "causal-lm" and results["preparation"]["loss_on"] == "assistant turns"
    ev = results["eval"]
    for key in ("loss", "perplexity", "mean_token_accuracy", "task_accuracy_generate", "task_accuracy_loglik",
                "validation_loss"):
        assert key in ev, key
    assert ev["tokens"] == results["preparation"]["loss_tokens"]["test"]
    losses = [m["loss"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in m]
    assert len(losses) == 4 and losses[-1] < losses[0]  # the loss on the assistant tokens falls
    assert (out / "checkpoints" / "final" / weights).is_file()
    again = _reloaded_eval(out)
    for key in ("loss", "mean_token_accuracy", "task_accuracy_loglik", "task_accuracy_generate"):
        assert again[key] == pytest.approx(ev[key], abs=1e-6), key
    memory = results["memory"]
    assert memory["peak_rss_bytes"] > 0
    if strategy == "sift":
        assert results["sift"]["selected_params"] > 0
        # the same count as SIFT's own accounting (moments + packed indices + base copy)
        assert memory["training_state_bytes"] == results["sift"]["optimizer_state_bytes"]
    else:  # AdamW: two fp32 moments per trainable entry (+ a 0-d step each), plus the adapter tensors themselves
        n = results["trainable_params"]
        assert 8 * n <= memory["optimizer_state_bytes"] <= 8 * n + 8 * 1024
        assert memory["training_state_bytes"] == memory["optimizer_state_bytes"] + 4 * n


def test_eval_before_does_not_change_training(tiny_llama, chat_data, tmp_path):
    plain = _run(tiny_llama, chat_data, tmp_path / "plain", "lora", "--max-steps", "2")
    with_before = _run(tiny_llama, chat_data, tmp_path / "before", "lora", "--max-steps", "2", "--eval-before")
    assert with_before["eval"]["loss"] == plain["eval"]["loss"]
    assert with_before["eval_before"]["loss"] > 0


def _bad_rows(path: Path, rows: list[dict]) -> Path:
    return write_jsonl(path, rows)


def _unknown_role(n: int) -> list[dict]:
    rows = messages_rows(n)
    rows[3]["messages"][1]["role"] = "narrator"
    return rows


def _no_assistant(n: int) -> list[dict]:
    rows = messages_rows(n)
    rows[2]["messages"] = rows[2]["messages"][:2]
    return rows


def _empty_completion(n: int) -> list[dict]:
    rows = pair_rows(n, conversational=False)
    rows[5]["completion"] = "  "
    return rows


def _long_prompts(n: int) -> list[dict]:
    rows = pair_rows(n, conversational=False)
    for row in rows:
        row["prompt"] = "the sky is blue " * 30 + row["prompt"]
    return rows


@pytest.mark.parametrize("name, rows, extra, model, message", [
    ("strategy", messages_rows, ("--strategy", "lp-ft"), "marked", "fits a classification head"),
    ("role", _unknown_role, (), "marked", "role 'narrator'; accepted roles: system, user, assistant"),
    ("assistant", _no_assistant, (), "marked", "has no assistant turn"),
    ("completion", _empty_completion, (), "marked", "empty completion"),
    ("template", messages_rows, (), "no-template", "has no chat template"),
    ("too-long", _long_prompts, (), "marked", "raise --max-length"),
    ("label", messages_rows, ("label_column=x",), "marked", "SFT data has no labels"),
])
def test_bad_input_exits_2_with_one_line(tiny_llama, tmp_path, capsys, name, rows, extra, model, message):
    data = _bad_rows(tmp_path / f"{name}.jsonl", rows(20))
    folder = tiny_llama if model == "marked" else save_tiny_llama(tmp_path / "plain", template=None)
    capsys.readouterr()  # what saving the checkpoint printed is not the command's output
    argv = ["sft", "--model", str(folder), "--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1",
            "--max-length", "48", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tunescope: error:"), err
    assert message in err, err
    assert not (tmp_path / "run" / "results.json").exists()


def test_long_prompts_are_dropped_and_counted(tiny_llama, tmp_path):
    rows = pair_rows(30, conversational=False)
    for i in range(0, 30, 3):
        rows[i]["prompt"] = "the sky is blue " * 30 + rows[i]["prompt"]
    data = write_jsonl(tmp_path / "some-long.jsonl", rows)
    results = _run(tiny_llama, data, tmp_path / "run", "lora", "--max-steps", "1")
    dropped = results["preparation"]["dropped_long_prompts"]
    assert sum(dropped.values()) == 10
    assert sum(results["data_sizes"].values()) == 20


def test_retention_measures_plain_text_perplexity_before_and_after(tiny_llama, chat_data, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join("the sun is yellow and the sky is blue " * 5 + f"{i}\n" for i in range(40)),
                      encoding="utf-8")  # 40 documents: 2 held out (5%), about 80 tokens, one 48-token block
    results = _run(tiny_llama, chat_data, tmp_path / "run", "full", "--max-steps", "2", "--lr", "1e-2",
                   "--retention-docs", "2", "--retention-data", str(corpus))
    facts = results["retention"]
    assert facts["docs"] == 2 and facts["blocks"] == 1 and facts["tokens"] == 47  # 48 tokens, 47 predicted
    assert facts["perplexity_before"] > 1 and facts["perplexity_after"] > 1
    assert facts["perplexity_before"] != facts["perplexity_after"]  # full fine-tuning moved every weight
    assert facts["perplexity_ratio"] == pytest.approx(facts["perplexity_after"] / facts["perplexity_before"])


def _first_step_tokens(out: Path) -> float:
    return next(m["num_tokens"] for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                if "loss" in m)


def test_packing_puts_more_tokens_in_each_step(tiny_llama, chat_data, tmp_path):
    packed = _run(tiny_llama, chat_data, tmp_path / "packed", "lora", "--packing", "--max-steps", "1",
                  "--max-length", "64")
    _run(tiny_llama, chat_data, tmp_path / "rows", "lora", "--max-steps", "1", "--max-length", "64")
    # 8 rows of up to 64 tokens: packed, each holds two 26-token conversations; unpacked, one
    assert _first_step_tokens(tmp_path / "packed") > 1.5 * _first_step_tokens(tmp_path / "rows")
    assert packed["eval"]["loss"] > 0


def test_messages_without_generation_markers_train_on_the_last_reply(tmp_path):
    folder = save_tiny_llama(tmp_path / "plain", template=PLAIN_TEMPLATE)
    data = write_jsonl(tmp_path / "chat.jsonl", messages_rows(20))
    results = _run(folder, data, tmp_path / "run", "full", "--max-steps", "1")
    assert results["preparation"]["loss_on"] == "last assistant turn"


def test_landscape_on_sft_data_scores_the_completion_tokens(tiny_llama, chat_data, tmp_path, capsys):
    """The specific-capability basin: `landscape --data <SFT data>` on an SFT run scores next-token accuracy on the
    completion tokens of the run's own test split, so S(theta) equals the run's test mean_token_accuracy."""
    run = tmp_path / "full"
    results = _run(tiny_llama, chat_data, run, "full", "--lr", "5e-3")
    out = tmp_path / "ls"
    code = main(["landscape", "--model", str(run), "--data", str(chat_data), "--max-length", "48",
                 "--eval-examples", "1000", "--directions", "random,sft", "--base", str(tiny_llama),
                 "--num-directions", "1", "--curve-points", "0", "--out", str(out), "tau=0.5", "relative=true"])
    assert code == 0, capsys.readouterr().err
    basin = json.loads((out / "results.json").read_text())["basin"]
    assert basin["score"] == pytest.approx(results["eval"]["mean_token_accuracy"], abs=1e-9)
    assert basin["sft"]["base_scale"] < 0 and len(basin["random"]["radii"]) == 1
