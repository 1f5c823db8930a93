"""`tunescope plan` and the planned `tunescope run` on a tiny BERT: the plan block, the budget, the parameter
counts the budget is checked with, and that the winner's final run continues its trial exactly."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from tunescope.cli import main


@pytest.fixture
def tiny(tiny_model_dir, toy_csv):
    return ["--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--batch-size", "16", "--epochs", "2",
            "plan_probe_examples=64", "probe_batch_size=8"]


def test_plan_writes_a_plan_within_the_budget(tiny, tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", *tiny, "--budget-params", "5%", "--out", str(out)]) == 0
    block = json.loads((out / "plan.json").read_text())
    assert block == json.loads((out / "results.json").read_text())["plan"]
    for key in ("strategy", "settings", "rules_fired", "rejected", "trials", "measurements", "because"):
        assert key in block
    budget = block["budget"]["params"]
    assert budget == int(0.05 * block["total_params"])
    assert block["trainable_params"] <= budget
    assert all(t["trainable_params"] <= budget for t in block["trials"])
    assert {"full", "lp-ft"} <= {r["strategy"] for r in block["rejected"] if r["rule"] == "parameter-budget"}
    assert any(r["name"] == "parameter-budget" for r in block["rules_fired"])
    chosen = [t for t in block["trials"] if t["status"] == "chosen"]
    assert len(chosen) == 1 and chosen[0]["strategy"] == block["strategy"]
    assert not chosen[0]["rungs"][-1]["collapsed"]
    printed = capsys.readouterr().out
    assert f"plan: {block['strategy']}" in printed and "rule " in printed
    assert "Plan" in (out / "report.html").read_text()


def test_budget_counts_equal_what_the_strategies_train(tiny_model_dir, toy_csv):
    from tunescope.experiments.plan import PlanConfig, finetune_config
    from tunescope.planning import budget as b
    from tunescope.strategies import STRATEGIES
    from tunescope.strategies.base import StrategyContext, count_parameters
    from tunescope.tasks import TASKS

    config = PlanConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv))
    task = TASKS.get("classification")
    loaded = task.load(finetune_config(config))
    cases = [("lora", {"lora_rank": 4}, b.lora_params(loaded.model, 4)),
             ("lora", {"lora_rank": 2, "layers": [1]}, b.lora_params(loaded.model, 2, [1])),
             ("sift", {"sift_rate": 0.05}, b.sift_params(loaded.model, 0.05)),
             ("full", {}, b.total_params(loaded.model))]
    for name, settings, expected in cases:
        cfg = finetune_config(config, strategy=name, **settings)
        ctx = StrategyContext(config=cfg, tokenizer=loaded.tokenizer, data=loaded.data, tokenized=loaded.tokenized,
                              collator=loaded.collator, task=task)
        model = STRATEGIES.get(name).prepare(copy.deepcopy(loaded.model), ctx)
        trained = ctx.results.get("trainable_params", count_parameters(model)[0])
        assert trained == expected, (name, settings)


@pytest.mark.parametrize("candidates,trial_steps,epochs", [
    ("lp-lora,lp-ft", "6", "2"),
    # rungs at 5, 10, 20 of 8 steps per epoch: trials pause and resume mid-epoch with length-grouped batches (the
    # stock sampler drew another order on resume; test logits then differed by 0.47)
    ("full,lora,lp-ft", "5", "4"),
])
def test_the_planned_run_continues_the_winners_trial_exactly(tiny, tmp_path, candidates, trial_steps, epochs):
    from tunescope.experiments.finetune import finetune
    from tunescope.experiments.plan import PlanConfig, chosen_config

    out = tmp_path / "run"
    assert main(["run", *tiny, "--candidates", candidates, "--trial-steps", trial_steps, "--epochs", epochs,
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    block = results["plan"]
    assert results["strategy"] == block["strategy"] and block["winner_steps"] >= 6
    assert (out / "plan" / "plan.json").is_file()
    assert results["wall_seconds"] >= block["seconds"]
    # The same config trained from scratch in one go: identical predictions.
    saved = json.loads((out / "plan" / "results.json").read_text())["plan"]
    config = PlanConfig(**{k: v for k, v in _saved_config(out / "plan").items()})
    ref = finetune(chosen_config(config, saved), tmp_path / "ref")
    got, want = np.load(out / "logits.npz"), np.load(tmp_path / "ref" / "logits.npz")
    np.testing.assert_allclose(got["test_logits"], want["test_logits"], atol=1e-5)
    assert results["eval"]["accuracy"] == ref["eval"]["accuracy"]


def _saved_config(folder) -> dict:
    import yaml

    return yaml.safe_load((folder / "config.yaml").read_text())
