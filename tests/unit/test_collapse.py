"""The majority-class baseline and the collapse warning: a classifier predicting one class for >= 95% of the test
set is flagged unless the labels are that skewed; results, compare rows, terminal and report all carry it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tunescope.tasks.classification import (
    COLLAPSE_SHARE,
    collapse_warning,
    majority_baseline,
    top_share,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BALANCED = np.array([0, 1] * 50)


def test_majority_baseline_is_the_training_majority_scored_on_test():
    baseline = majority_baseline(np.array([2, 2, 1, 0, 2]), np.array([2, 1, 1, 2]), ["a", "b", "c"])
    assert baseline == {"majority_class": 2, "majority_label": "c", "accuracy": 0.5}
    assert majority_baseline(np.array([1, 0]), np.array([0, 0, 1]))["majority_class"] == 0  # tie: lowest id
    assert majority_baseline(np.array([1, 1]), np.array([0, 1]))["majority_label"] == "1"  # no names: the id


def test_top_share():
    assert top_share(np.array([3, 1, 3, 3])) == (3, 0.75)


def test_planted_collapse_is_flagged():
    predictions = np.zeros(100, dtype=int)
    warning = collapse_warning(predictions, BALANCED, ["neg", "pos"])
    assert warning["kind"] == "collapse" and warning["predicted_label"] == "neg" and warning["split"] == "test"
    assert warning["predicted_share"] == 1.0 and warning["majority_share"] == 0.5
    assert "predicts 'neg' for 100.0% of the test set (100 examples)" in warning["message"]
    assert "only 50.0%" in warning["message"] and "\n" not in warning["message"]


def test_threshold_is_inclusive_at_95_percent():
    almost = np.array([0] * 95 + [1] * 5)
    assert COLLAPSE_SHARE == 0.95
    assert collapse_warning(almost, BALANCED) is not None  # 95% exactly: flagged
    assert collapse_warning(np.array([0] * 94 + [1] * 6), BALANCED) is None


def test_healthy_predictions_are_not_flagged():
    rng = np.random.default_rng(0)
    predictions = np.where(rng.random(100) < 0.8, BALANCED, 1 - BALANCED)  # 80% right, both classes used
    assert collapse_warning(predictions, BALANCED) is None


def test_skewed_data_is_not_flagged():
    labels = np.array([0] * 97 + [1] * 3)  # the data itself is 97% one class
    assert collapse_warning(np.zeros(100, dtype=int), labels) is None
    assert collapse_warning(np.zeros(0, dtype=int), np.zeros(0, dtype=int)) is None


def test_sanity_checks_flag_a_model_whose_head_is_biased_to_one_class(tiny_model_dir, toy_csv):
    """The planted collapse through the real evaluation path: zero the head, bias it to class 1."""
    from tunescope.experiments.finetune import FinetuneConfig
    from tunescope.models.layers import model_layout
    from tunescope.tasks import TASKS

    task = TASKS.get("classification")
    loaded = task.load(FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv)))
    head = model_layout(loaded.model).head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([-5.0, 5.0]))
    checks = task.sanity_checks(loaded, task.evaluate(loaded.model, loaded, "test", 64))
    test_labels = np.asarray(loaded.tokenized["test"]["labels"])
    assert checks["baseline"]["accuracy"] == pytest.approx(np.mean(test_labels == checks["baseline"]["majority_class"]))
    [warning] = checks["warnings"]
    assert warning["predicted_class"] == 1 and warning["predicted_share"] == 1.0
    assert warning["majority_share"] == pytest.approx(top_share(test_labels)[1])


def test_compare_rows_carry_baseline_and_warnings():
    from tunescope.experiments.compare import (
        format_table,
        run_row,
        run_warnings,
        summarise,
    )

    collapse = {"kind": "collapse", "message": "the model collapsed to one class: ..."}
    runs = [{"strategy": "full", "seed": 0, "eval": {"accuracy": 0.5}, "baseline": {"accuracy": 0.5},
             "warnings": [collapse]},
            {"strategy": "full", "seed": 1, "eval": {"accuracy": 0.9}, "baseline": {"accuracy": 0.5}}]
    rows = [run_row(r) for r in runs]
    assert rows[0]["baseline_accuracy"] == 0.5 and rows[0]["warnings"] == ["collapse"] and rows[1]["warnings"] == []
    [entry] = summarise(rows, ["full"])
    assert entry["runs_with_warnings"] == 1 and entry["baseline_accuracy"] == 0.5
    tagged = run_warnings(runs[0], "full-seed0")
    assert tagged == [{**collapse, "run": "full-seed0", "message": "full-seed0: " + collapse["message"]}]
    assert "baseline_accuracy" in format_table([entry]).splitlines()[0]


def test_print_warnings(capsys):
    from tunescope.cli.commands.finetune import baseline_note, print_warnings

    results = {"baseline": {"accuracy": 0.5}, "warnings": [{"kind": "collapse", "message": "collapsed"}]}
    print_warnings(results)
    assert capsys.readouterr().out == "warning: collapsed\n"
    assert baseline_note(results) == " (majority-class baseline 0.5000)" and baseline_note({}) == ""
    print_warnings({})
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("command", ["finetune", "compare"])
def test_report_puts_the_warnings_box_first(tmp_path, command):
    from tunescope.report.html import build_report

    results = {"command": command, "model": "m", "strategy": "full", "baseline": {"majority_label": "neg",
                                                                                  "accuracy": 0.5},
               "warnings": [{"kind": "collapse", "message": "the model collapsed to <one> class"}]}
    (tmp_path / "results.json").write_text(json.dumps(results))
    page = build_report(tmp_path).read_text()
    body = page[page.index("<body>"):]
    first = body.index("<section")
    assert body.index('<section id="warnings">') == first
    assert "the model collapsed to &lt;one&gt; class" in page and 'role="alert"' in page
    assert "majority-class baseline" in page


def test_report_without_warnings_has_no_box(tmp_path):
    from tunescope.report.html import build_report

    (tmp_path / "results.json").write_text(json.dumps({"model": "m", "strategy": "full", "warnings": []}))
    assert 'id="warnings"' not in build_report(tmp_path).read_text()
