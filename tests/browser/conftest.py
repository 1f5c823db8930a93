"""Fixtures of the browser tier: one headless Chromium per module and real small runs to open in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser._browser import chromium_path

# Small enough for seconds per run, big enough for every section a person reads: 48 examples per split,
# 16 tokens, 2 epochs of 3 steps, the loss logged at every step.
SMALL = {"max_length": 16, "limit": 48, "epochs": 2, "batch_size": 16, "eval_batch_size": 64,
         "learning_rate": 1e-3, "logging_steps": 1}


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, driven by playwright (no browser download: `executable_path` is the system one)."""
    path = chromium_path()
    if path is None:
        pytest.fail("chromium is not on PATH: `make browser` (part of `make test`) installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory, tiny_model_dir, toy_csv) -> tuple[Path, dict]:
    """A tiny random BERT fine-tuned through the Python API the way `tunescope run` does it: diagnosed first,
    LoRA at the inflection layers."""
    from tunescope.experiments.finetune import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("browser") / "run"
    config = FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), strategy="lora-inflection",
                            diagnose=True, **SMALL)
    finetune(config, out)
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory, tiny_model_dir, toy_csv) -> tuple[Path, dict]:
    """`compare` of lp-ft and lora on the same tiny BERT, one seed (each sub-run writes its own report)."""
    from tunescope.experiments.compare import run_compare
    from tunescope.experiments.finetune import FinetuneConfig

    out = tmp_path_factory.mktemp("browser") / "compare"
    base = FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), **SMALL)
    run_compare(base, ["lp-ft", "lora"], [0], out)
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> tuple[Path, dict]:
    """`tunescope sft` with LoRA on a tiny random Llama and toy two-choice chat data, the base model evaluated too
    (--eval-before) so the headline has its baseline."""
    from tests.unit._sft_helpers import messages_rows, save_tiny_llama, write_jsonl
    from tunescope.cli import main

    root = tmp_path_factory.mktemp("browser-sft")
    model = save_tiny_llama(root / "llama")
    data = write_jsonl(root / "chat.jsonl", messages_rows(40))
    out = root / "sft"
    assert main(["-q", "sft", "--model", str(model), "--data", str(data), "--out", str(out), "--strategy", "lora",
                 "--max-steps", "4", "--batch-size", "8", "--eval-batch-size", "16", "--max-length", "48",
                 "--logging-steps", "1", "--lr", "5e-3", "--eval-before"]) == 0
    return out, json.loads((out / "results.json").read_text())
