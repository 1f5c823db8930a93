"""Report section of `tunescope compare`: one table (mean ± std over seeds) and bar plots per metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import table

COLUMNS = ("accuracy", "baseline_accuracy", "ece", "ece_after_ts", "nll", "temperature", "head_norm_after_lp",
           "head_norm_after_ft", "feature_cosine", "feature_l2", "ft_ratio", "trainable_params")
PLOTS = (("accuracy", "test accuracy"), ("ece", "ECE before / after TS"), ("head_norm_after_lp", "head norm"),
         ("feature_l2", "feature change (mean L2)"), ("ft_ratio", "FT ratio"))


def _cell(entry: dict, col: str) -> str:
    v, s = entry.get(col), entry.get(f"{col}_std")
    if v is None:
        return "-"
    return f"{v:.4g} ± {s:.2g}" if s else f"{v:.4g}"


def bar_figure(summary: list[dict], col: str, title: str):
    """Bars of mean ± std per strategy; ECE gets after-TS bars, head norm gets after-FT bars beside it."""
    fig, ax = new_figure(5.5, 3.0)
    names = [e["strategy"] for e in summary]
    x = np.arange(len(names))
    pairs = {"ece": ("ece_after_ts", "after TS"), "head_norm_after_lp": ("head_norm_after_ft", "after FT")}
    second = pairs.get(col)
    width = 0.4 if second else 0.7
    for offset, key, label in ((0.0, col, col), (width, second[0], second[1]) if second else (None, None, None)):
        if key is None:
            continue
        vals = [np.nan if e.get(key) is None else e[key] for e in summary]
        errs = [0 if e.get(f"{key}_std") is None else e[f"{key}_std"] for e in summary]
        ax.bar(x + offset - (width / 2 if second else 0), vals, width, yerr=errs, capsize=3, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_title(title)
    if second:
        ax.legend(fontsize=8)
    return fig


@register_section("comparison", "Strategy comparison", order=3)
def comparison(results: dict, run_dir: Path) -> str | None:
    comp = results.get("comparison")
    if not comp:
        return None
    summary = comp["summary"]
    out = (f"<p>{len(results.get('seeds', []))} seed(s): {results.get('seeds')}; every cell is mean ± std over "
           "seeds. Each run has its own directory and report.</p>")
    out += table(("strategy", "seeds", *COLUMNS), [(e["strategy"], e["n_seeds"], *(_cell(e, c) for c in COLUMNS))
                                                   for e in summary])
    for col, title in PLOTS:
        if any(e.get(col) is not None for e in summary):
            out += figure_html(bar_figure(summary, col, title), title)
    runs = comp.get("runs", [])
    out += "<h3>Runs</h3>" + table(("run", "strategy", "seed", "accuracy", "baseline_accuracy", "ece",
                                    "ece_after_ts", "feature_l2", "warnings"),
                                   [(r.get("run_dir"), r["strategy"], r["seed"], r.get("accuracy"),
                                     r.get("baseline_accuracy"), r.get("ece"), r.get("ece_after_ts"),
                                     r.get("feature_l2"), ", ".join(r.get("warnings") or []) or "-") for r in runs])
    return out
