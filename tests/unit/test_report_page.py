"""The report as a person reads it (issue 16): the headline at the top, the reason once, the LP-FT section only
where there was a linear probe, whole-number step ticks, units, labelled y axes, a compare page with its settings
and links to every run's own report and tables that fit the page."""

from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import pytest

from tunescope.report import headline
from tunescope.report.html import build_report
from tunescope.report.sections.comparison import PLOTS, bar_figure
from tunescope.report.sections.training import curve_figure
from tunescope.report.tables import duration, table

REASON = "layer 2 of 4: highest band score 2.71 (z(-entropy) + z(gradient decay))"


def _finetune_results(**extra) -> dict:
    """results.json of a `tunescope run` (LoRA at the inflection layers), as finetune writes it."""
    return {"command": "finetune", "model": "m", "data": "d", "strategy": "lora-inflection", "seed": 0,
            "data_sizes": {"train": 48, "validation": 16, "test": 16}, "wall_seconds": 455.4,
            "trainable_params": 1602, "total_params": 41988,
            "eval": {"accuracy": 0.8125, "nll": 0.5}, "baseline": {"majority_label": "neg", "accuracy": 0.5625},
            "warnings": [], "adapted_layers": [2], "adapted_because": REASON,
            "diagnostics": {"layers": [{"layer": i, "attn_entropy": 2.0 - 0.1 * i} for i in range(4)],
                            "inflection_layers": [2], "reason": REASON},
            "head_norm": {"init": 0.15, "after_ft": 0.16}, "feature_change": {"cosine": 0.99, "l2": 0.01},
            **extra}


def _page(tmp_path, results: dict) -> str:
    (tmp_path / "results.json").write_text(json.dumps(results))
    return build_report(tmp_path).read_text()


def _section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start:page.index("</section>", start)]


def test_headline_of_a_classification_run(tmp_path):
    results = _finetune_results()
    assert headline.result(results) == \
        "test accuracy 0.8125 vs majority-class baseline 0.5625, always predicting 'neg': +0.2500"
    assert headline.ran(results) == ("finetune, strategy lora-inflection, model m, data d (48 train / 16 validation / "
                                     "16 test examples), seed 0, wall time 7 min 35 s")
    assert headline.adapted(results) == "LoRA adapters at layers 2 of 4; 1,602 of 41,988 parameters trainable (3.82%)"
    assert headline.warnings_summary(results) == "none"
    page = _page(tmp_path, results)
    summary = _section(page, "overview")
    assert '<p class="headline">test accuracy 0.8125 vs majority-class baseline 0.5625' in summary
    # The summary is the first section after the (absent here) warnings box.
    assert page.index('<section id="overview">') == page.index("<section")


def test_the_reason_appears_once(tmp_path):
    page = _page(tmp_path, _finetune_results())
    assert page.count(REASON) == 1
    assert REASON in _section(page, "overview")
    assert "why, see the summary at the top" in _section(page, "diagnostics")


def test_a_plan_gives_the_headline_reason_and_the_selection_keeps_its_own(tmp_path):
    plan = {"strategy": "lora-inflection", "settings": {}, "trials": [], "rejected": [],
            "rules_fired": [{"name": "small-budget", "because": "a 2,000-parameter budget fits LoRA at one layer"},
                            {"name": "other", "because": "second reason"}]}
    results = _finetune_results(plan=plan)
    results.pop("adapted_because")
    assert headline.reason(results) == "a 2,000-parameter budget fits LoRA at one layer (rule small-budget)"
    assert headline.adapted(results).startswith("the plan chose strategy lora-inflection; LoRA adapters at layers 2")
    page = _page(tmp_path, results)
    summary = _section(page, "overview")
    assert "a 2,000-parameter budget fits LoRA at one layer" in summary and "second reason" not in summary
    assert REASON not in summary and page.count(REASON) == 1  # the selection's reason, in its own section
    assert REASON in _section(page, "diagnostics")


def test_warnings_are_counted_in_the_summary():
    results = {"warnings": [{"kind": "collapse", "run": "lora-seed0", "message": "x"},
                            {"kind": "collapse", "run": "full-seed1", "message": "y"}]}
    assert headline.warnings_summary(results) == "2 (collapse: lora-seed0, full-seed1), listed in the red box above"


def test_headline_of_an_sft_run_against_the_base_model():
    ev = {"loss": 1.25, "perplexity": 3.4903, "task_accuracy_loglik": 0.75, "task_accuracy_generate": 0.5}
    before = {"loss": 2.0, "task_accuracy_loglik": 0.5, "task_accuracy_generate": 0.25}
    assert headline.result({"eval": ev, "eval_before": before}) == (
        "test loss 1.2500 (perplexity 3.49), task accuracy (log-likelihood) 0.7500, task accuracy (generation) "
        "0.5000; base model before training: test loss 2.0000 (-0.7500), task accuracy (log-likelihood) 0.5000 "
        "(+0.2500), task accuracy (generation) 0.2500 (+0.2500)")
    assert headline.result({"eval": {"loss": 1.25}}) == \
        "test loss 1.2500; base model not evaluated (add --eval-before for its numbers)"


def test_lpft_section_only_where_there_was_a_linear_probe(tmp_path):
    assert 'id="lpft"' not in _page(tmp_path, _finetune_results())
    probed = _finetune_results(strategy="lp-ft", head_norm={"init": 0.15, "after_lp": 72.3, "after_ft": 72.4},
                               lp={"C": 1.0})
    assert 'id="lpft"' in _page(tmp_path, probed)


def test_learning_curve_ticks_are_whole_steps():
    points = [(1, 3.36), (2, 3.46), (3, 3.36), (4, 3.33)]
    fig, ax = plt.subplots()
    ax.plot(*zip(*points))
    fig.canvas.draw()
    assert any(t != int(t) for t in ax.get_xticks())  # matplotlib's own ticks: 1.0, 1.5, 2.0, ... (the defect)
    plt.close(fig)
    fig = curve_figure(points, "optimizer step", "training loss")
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 4]
    assert ticks == [1, 2, 3, 4]
    assert ax.get_ylabel() == "training loss" and ax.get_xlabel() == "optimizer step"
    plt.close(fig)


@pytest.mark.parametrize("seconds, text", [(12.59, "12.6 s"), (0.72, "0.72 s"), (455.4, "7 min 35 s"),
                                           (7300, "2 h 01 min"), (None, "-")])
def test_wall_time_has_its_unit(seconds, text):
    assert duration(seconds) == text


SUMMARY = [{"strategy": s, "n_seeds": 2, "accuracy": a, "accuracy_std": 0.01, "baseline_accuracy": 0.5,
            "ece": 0.1, "ece_after_ts": 0.02, "nll": 0.6, "trainable_params": p, "wall_seconds": 20.0,
            "head_norm_after_lp": lp, "head_norm_after_ft": ft, "feature_l2": 0.2, "ft_ratio": 0.5,
            "temperature": 1.1, "feature_cosine": 0.9}
           for s, a, p, lp, ft in (("lp-ft", 0.8, 40386.0, 72.3, 72.4), ("lora", 0.75, 6210.0, None, 0.15))]


@pytest.mark.parametrize("col, title, ylabel, log", PLOTS)
def test_compare_charts_label_their_y_axis(col, title, ylabel, log):
    fig = bar_figure(SUMMARY, col, title, ylabel, log)
    ax = fig.axes[0]
    assert ax.get_ylabel() == ylabel != ""
    # Head norms after LP (~70) and after FT (~0.15) differ by ~500x: only a log axis shows both.
    assert ax.get_yscale() == ("log" if col == "head_norm_after_lp" else "linear")
    plt.close(fig)


def test_compare_page_has_settings_links_and_narrow_tables(tmp_path):
    runs = [{"run_dir": f"{s}-seed{k}", "strategy": s, "seed": k, "accuracy": 0.8, "baseline_accuracy": 0.5,
             "ece": 0.1, "feature_l2": 0.2, "wall_seconds": 75.0, "warnings": []}
            for s in ("lp-ft", "lora") for k in (0, 1)]
    results = {"command": "compare", "model": "m", "data": "d", "strategies": ["lp-ft", "lora"], "seeds": [0, 1],
               "settings": {"model": "m", "data": "d", "epochs": 3, "learning_rate": None, "batch_size": 16},
               "comparison": {"runs": runs, "summary": SUMMARY}, "warnings": [], "wall_seconds": 300.0}
    for r in runs[:3]:  # the last run has no report.html: no link to it
        (tmp_path / r["run_dir"]).mkdir()
        (tmp_path / r["run_dir"] / "report.html").write_text("<html></html>")
    page = _page(tmp_path, results)
    comp = _section(page, "comparison")
    assert "Settings shared by every run" in comp and "each strategy&#x27;s default" in comp
    for r in runs[:3]:
        assert f'<a href="{r["run_dir"]}/report.html">{r["run_dir"]}</a>' in comp
    assert "lora-seed1/report.html" not in comp and "<td>lora-seed1</td>" in comp
    assert '<td class="num">1 min 15 s</td>' in comp  # wall time with its unit, never broken inside
    assert '<td class="num">40,386</td>' in comp  # a parameter count, not 4.039e+04
    for t in re.findall(r"<table>.*?</table>", comp):
        header = re.search(r"<thead><tr>(.*?)</tr></thead>", t)
        assert header is None or header.group(1).count("<th>") <= 9  # narrow enough for the page
    summary = _section(page, "overview")
    assert "best test accuracy 0.8000 ± 0.01 (lp-ft, mean of 2 seed(s)) vs majority-class baseline 0.5000: " \
           "+0.3000" in summary


def test_numbers_never_break_other_cells_may():
    html = table(("a", "b", "c"), [("/a/very/long/path", 0.009096, "0.4491 ± 0.01")])
    assert "<td>/a/very/long/path</td>" in html
    assert '<td class="num">0.009096</td>' in html and '<td class="num">0.4491 ± 0.01</td>' in html


def test_headline_of_a_diagnose_run(tmp_path):
    results = {"command": "diagnose", "model": "m", "data": "d", "warnings": [],
               "diagnostics": {"layers": [{"layer": i, "attn_entropy": 1.0 + i} for i in range(6)],
                               "inflection_layers": [1, 2], "reason": REASON}}
    assert headline.result(results) == "inflection layers [1, 2] of 6"
    assert headline.adapted(results) == "nothing trained: the layers LoRA would adapt"
    page = _page(tmp_path, results)
    assert page.count(REASON) == 1 and REASON in _section(page, "overview")
