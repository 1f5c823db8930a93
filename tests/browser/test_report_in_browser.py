"""report.html of real small runs, as a person sees it in headless Chromium: no console error, no request leaving
the machine, a page that is not blank, the headline (result against its baseline) at the top, and no table wider
than the window."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.browser._browser import is_blank, render

pytestmark = pytest.mark.browser


def _assert_clean(shown) -> None:
    """What every report must satisfy in the browser."""
    assert shown.console_errors == []
    assert shown.remote_requests == []
    assert not is_blank(shown.pixels)
    assert shown.scroll_width <= shown.inner_width, "the page scrolls sideways"


def test_the_checks_catch_what_they_are_for(browser, tmp_path):
    """The harness itself: a remote image and a console error are caught, and a white page counts as blank."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><img src='http://example.invalid/a.png'>"
                   "<script>console.error('boom')</script></body></html>")
    shown = render(browser, bad)
    assert shown.remote_requests == ["http://example.invalid/a.png"]
    assert any("boom" in e for e in shown.console_errors)
    white = np.full((100, 100, 3), 255, np.uint8)
    assert is_blank(white)
    white[40:60, 10:90] = 0  # 16% of the page drawn
    assert not is_blank(white)
    wide = tmp_path / "wide.html"
    wide.write_text("<!DOCTYPE html><html><body><div style='width:3000px'>wide</div></body></html>")
    shown = render(browser, wide)
    assert shown.scroll_width > shown.inner_width


def test_finetune_report(browser, finetune_run):
    out, results = finetune_run
    shown = render(browser, out / "report.html")
    _assert_clean(shown)
    top = (["warnings"] if results["warnings"] else []) + ["overview"]  # the red box, then the summary
    assert list(shown.sections)[: len(top)] == top
    summary = shown.sections["overview"]
    acc, base = results["eval"]["accuracy"], results["baseline"]["accuracy"]
    assert f"test accuracy {acc:.4f} vs majority-class baseline {base:.4f}" in summary
    assert "lora-inflection" in summary and "what ran" in summary and "warnings" in summary
    assert f"LoRA adapters at layers {', '.join(map(str, results['adapted_layers']))}" in summary
    why = results["adapted_because"]
    assert why in summary and shown.text.count(why) == 1  # the reason once, in the summary
    assert "lpft" not in shown.sections  # no linear-probe stage, no LP-FT section
    assert re.search(r"wall time (\d+(\.\d+)? s|\d+ min \d\d s)", summary)  # with its unit


def test_compare_report(browser, compare_run):
    out, results = compare_run
    for width in (1280, 1024):  # a laptop window and a narrower one: the tables wrap, the page does not scroll
        shown = render(browser, out / "report.html", width=width)
        _assert_clean(shown)
    best = max(results["comparison"]["summary"], key=lambda e: e["accuracy"])
    summary = shown.sections["overview"]
    assert f"best test accuracy {best['accuracy']:.4f}" in summary
    assert f"majority-class baseline {best['baseline_accuracy']:.4f}" in summary
    comparison = shown.sections["comparison"]
    assert "Settings shared by every run" in comparison and "learning_rate" in comparison
    # Every run is linked to its own report, which opens cleanly too.
    runs = [r["run_dir"] for r in results["comparison"]["runs"]]
    html = (out / "report.html").read_text()
    for name in runs:
        assert f'<a href="{name}/report.html">{name}</a>' in html
    lpft_run = render(browser, out / "lp-ft-seed0" / "report.html")
    _assert_clean(lpft_run)
    assert "lpft" in lpft_run.sections  # the LP-FT section where there was a linear probe
    lora_run = render(browser, out / "lora-seed0" / "report.html")
    assert "lpft" not in lora_run.sections


def test_sft_report(browser, sft_run):
    out, results = sft_run
    shown = render(browser, out / "report.html")
    _assert_clean(shown)
    summary = shown.sections["overview"]
    ev, before = results["eval"], results["eval_before"]
    assert f"test loss {ev['loss']:.4f}" in summary
    assert f"base model before training: test loss {before['loss']:.4f} ({ev['loss'] - before['loss']:+.4f})" \
        in summary
