"""Report section of `tunescope compare`: the shared settings, two narrow tables (results; LP-FT quantities) of
mean ± std over seeds, bar charts with labelled y axes, and every run with a link to its own report.

The columns are split into two tables of at most nine so that the page never scrolls sideways.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import Html, duration, fmt, key_values, link, table

# (key in comparison.summary, column header); the first table is the result, the second the LP-FT analyses.
RESULT_COLUMNS = (("accuracy", "test accuracy"), ("baseline_accuracy", "majority-class baseline"),
                  ("nll", "test NLL (nats)"), ("ece", "ECE"), ("ece_after_ts", "ECE after TS"),
                  ("trainable_params", "trainable params"), ("wall_seconds", "wall time"))
LPFT_COLUMNS = (("temperature", "temperature T"), ("head_norm_after_lp", "head norm after LP"),
                ("head_norm_after_ft", "head norm after FT"), ("feature_cosine", "feature cosine"),
                ("feature_l2", "feature change (L2)"), ("ft_ratio", "FT ratio"))
# (key, title, y label, log scale): head norms span orders of magnitude (LP heads ~100x a fine-tuned one).
PLOTS = (("accuracy", "test accuracy", "test accuracy", False),
         ("ece", "ECE before / after temperature scaling", "ECE on test", False),
         ("head_norm_after_lp", "head norm after LP / after FT", "head norm ||V||_F (log scale)", True),
         ("feature_l2", "feature change", "mean ||phi(x) - phi0(x)||", False),
         ("ft_ratio", "FT ratio", "FT ratio (0 to 1)", False))
# The second series drawn beside a metric's bars.
PAIRS = {"ece": ("ece_after_ts", "after TS"), "head_norm_after_lp": ("head_norm_after_ft", "after FT")}
FIRST_LABEL = {"ece": "before TS", "head_norm_after_lp": "after LP"}
# Settings a reader checks first; the rest are folded away.
MAIN_SETTINGS = ("model", "data", "epochs", "max_steps", "learning_rate", "batch_size", "max_length", "limit",
                 "lora_rank", "sift_rate", "ntk_samples")


def _value(col: str, v) -> str:
    if col == "trainable_params":
        return f"{v:,.0f}"
    if col == "wall_seconds":
        return duration(v)
    return f"{v:.4g}"


def _cell(entry: dict, col: str) -> str:
    """'mean ± std' over seeds ('mean' alone for one seed, '-' when no run measured it)."""
    v, s = entry.get(col), entry.get(f"{col}_std")
    if v is None:
        return "-"
    return f"{_value(col, v)} ± {s:.2g}" if s and col not in ("trainable_params", "wall_seconds") else _value(col, v)


def bar_figure(summary: list[dict], col: str, title: str, ylabel: str, log: bool = False):
    """Bars of mean ± std per strategy (ECE with after-TS bars beside it, head norm after LP with after FT);
    test accuracy with the majority-class baseline as a dashed line."""
    fig, ax = new_figure(6.0, 3.2)
    names = [e["strategy"] for e in summary]
    x = np.arange(len(names))
    second = PAIRS.get(col)
    width = 0.4 if second else 0.7
    series = [(col, FIRST_LABEL.get(col, title))] + ([second] if second else [])
    for i, (key, label) in enumerate(series):
        vals = [np.nan if e.get(key) is None else e[key] for e in summary]
        errs = [0 if e.get(f"{key}_std") is None else e[f"{key}_std"] for e in summary]
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, vals, width, yerr=errs, capsize=3, label=label)
    baselines = [e["baseline_accuracy"] for e in summary if e.get("baseline_accuracy") is not None]
    if col == "accuracy" and baselines:
        ax.axhline(float(np.mean(baselines)), color="k", ls="--", lw=1, label="majority-class baseline")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    drawn = [e.get(k) for e in summary for k, _ in series]
    if log and any(isinstance(v, (int, float)) and v > 0 for v in drawn):  # a log axis needs a positive value
        ax.set_yscale("log")
    if len(series) > 1 or col == "accuracy" and baselines:
        ax.legend(fontsize=8)
    return fig


def _settings(results: dict) -> str:
    settings = results.get("settings") or {}
    if not settings:
        return ""
    main = [(k, settings[k]) for k in MAIN_SETTINGS if settings.get(k) is not None]
    if settings.get("learning_rate") is None:
        main.append(("learning_rate", "each strategy's default"))
    out = "<h3>Settings shared by every run</h3>" + key_values(main)
    return out + "<details><summary>all settings</summary>" + key_values(sorted(settings.items())) + "</details>"


def _runs(results: dict, run_dir: Path) -> str:
    rows = []
    for r in results["comparison"].get("runs", []):
        name = str(r.get("run_dir", ""))
        report = run_dir / name / "report.html"
        # A relative link keeps the folder movable; a run without its report (write_report off) gets its name.
        cell = link(f"{name}/report.html", name) if name and report.is_file() else Html(fmt(name))
        rows.append((cell, r["strategy"], r["seed"], r.get("accuracy"), r.get("baseline_accuracy"), r.get("ece"),
                     r.get("feature_l2"), duration(r.get("wall_seconds")), ", ".join(r.get("warnings") or []) or "-"))
    return ("<h3>Runs</h3><p>Each run has its own folder and report (linked).</p>"
            + table(("run", "strategy", "seed", "test accuracy", "majority-class baseline", "ECE", "feature change (L2)",
                     "wall time", "warnings"), rows))


@register_section("comparison", "Strategy comparison", order=3)
def comparison(results: dict, run_dir: Path) -> str | None:
    comp = results.get("comparison")
    if not comp:
        return None
    summary = comp["summary"]
    out = _settings(results)
    out += (f"<h3>Results</h3><p>{len(results.get('seeds', []))} seed(s): {fmt(results.get('seeds'))}; every cell "
            "is mean ± std over seeds (test split; ECE before / after temperature scaling).</p>")
    out += table(("strategy", "seeds", *(h for _, h in RESULT_COLUMNS)),
                 [(e["strategy"], e["n_seeds"], *(_cell(e, c) for c, _ in RESULT_COLUMNS)) for e in summary])
    lpft = [(c, h) for c, h in LPFT_COLUMNS if any(e.get(c) is not None for e in summary)]
    if lpft:
        out += ("<h3>LP-FT quantities</h3><p>Head norm = ||V||_F of the head's last linear layer; feature change on "
                "the test split against the pre-trained model (docs/lpft.md).</p>")
        out += table(("strategy", *(h for _, h in lpft)),
                     [(e["strategy"], *(_cell(e, c) for c, _ in lpft)) for e in summary])
    for col, title, ylabel, log in PLOTS:
        keys = (col, PAIRS[col][0]) if col in PAIRS else (col,)
        if any(e.get(k) is not None for e in summary for k in keys):
            out += figure_html(bar_figure(summary, col, title, ylabel, log), f"{title}; y axis: {ylabel}")
    return out + _runs(results, run_dir)
