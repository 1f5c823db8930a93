"""Report section: calibration (ECE, MCE, Brier, temperature scaling) and the reliability diagram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import table


def reliability_figure(reliability: dict, after: dict | None, title: str = "Reliability diagram (test)"):
    """Accuracy per confidence bin (bars) against the diagonal; before and, if given, after temperature scaling."""
    fig, ax = new_figure(5.2, 4.0)
    edges = np.asarray(reliability["edges"])
    width = np.diff(edges)
    for rel, label, colour, alpha in ((reliability, "before TS", "tab:red", 0.45), (after, "after TS", "tab:blue", 0.45)):
        if not rel:
            continue
        acc = np.array([np.nan if a is None else a for a in rel["accuracy"]])
        ax.bar(edges[:-1], np.nan_to_num(acc), width=width, align="edge", alpha=alpha, color=colour,
               edgecolor="k", linewidth=0.4, label=label)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlabel("confidence (max softmax probability)")
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


@register_section("calibration", "Calibration", order=22)
def calibration(results: dict, run_dir: Path) -> str | None:
    cal = results.get("calibration")
    ev = results.get("eval") or {}
    if not cal or "ece" not in ev:
        return None
    rows = [(k, ev.get(k), ev.get(f"{k}_after_ts")) for k in ("ece", "mce", "nll", "brier")]
    out = (f"<p>{cal.get('n_bins', 15)} equal-width confidence bins. ECE = sum_b (n_b/N) |acc_b - conf_b|; "
           "MCE = max_b |acc_b - conf_b|. Temperature scaling: one T &gt; 0 minimising validation NLL"
           + (f"; fitted T = {ev['temperature']:.4g}" if "temperature" in ev else "") + ".</p>")
    out += table(("metric (test)", "before", "after temperature scaling"), rows)
    out += figure_html(reliability_figure(cal["reliability"], cal.get("reliability_after_ts")),
                       "reliability diagram")
    return out
