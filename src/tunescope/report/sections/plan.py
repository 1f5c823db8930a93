"""Report section: the plan (results["plan"]) - what was chosen and why, the rules that fired, what was rejected,
the measurements behind them and the trial curves."""

from __future__ import annotations

import html
from pathlib import Path

from tunescope.report.plots import figure_html, integer_ticks, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import duration, table


def trial_figure(trials: list[dict], majority: float | None):
    """Validation accuracy at each rung step, one line per tried candidate."""
    fig, ax = new_figure()
    for t in trials:
        steps = [r["step"] for r in t["rungs"]]
        accs = [r["validation_accuracy"] for r in t["rungs"]]
        style = "-o" if t["status"] == "chosen" else "--o"
        ax.plot(steps, accs, style, label=f"{t['strategy']} ({t['status']})")
    if majority is not None:
        ax.axhline(majority, color="grey", lw=0.8, ls=":", label="majority class")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("validation accuracy")
    integer_ticks(ax, "x")
    ax.set_title("Trials (successive halving)")
    ax.legend(fontsize=8)
    return fig


def _settings(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v is not None)


@register_section("plan", "Plan: what was chosen and why", order=2)
def plan(results: dict, run_dir: Path) -> str | None:
    p = results.get("plan")
    if not p:
        return None
    m = p["measurements"]
    out = (f"<p><b>{html.escape(p['strategy'])}</b> ({html.escape(_settings(p['settings']))}), "
           f"{p['trainable_params']:,} of {p['total_params']:,} parameters trained: {html.escape(p['because'])}. "
           f"Plan mode {html.escape(p['mode'])}; plan time {duration(p['seconds'])} "
           f"({p['trial_steps']} trial steps of {p['total_steps']} in the final schedule).</p>")
    out += "<h3>Rules that fired</h3>" + table(
        ["rule", "paper", "numbers", "effect"],
        [[r["name"], r["paper"], r["because"], r["effect"]] for r in p["rules_fired"]])
    if p["rejected"]:
        out += "<h3>Rejected</h3>" + table(["strategy", "by", "reason"],
                                           [[r["strategy"], r["rule"], r["reason"]] for r in p["rejected"]])
    if p["trials"]:
        majority = m["features"].get("majority_accuracy")
        out += "<h3>Trials</h3>" + figure_html(trial_figure(p["trials"], majority),
                                               "validation accuracy of each candidate at each rung")
        out += table(["strategy", "settings", "trainable", "status", "validation accuracy by step", "time"],
                     [[t["strategy"], _settings(t["settings"]), t["trainable_params"], t["status"],
                       "; ".join(f"{r['step']}: {r['validation_accuracy']:.3f}" for r in t["rungs"]) or t["reason"],
                       duration(t["seconds"])] for t in p["trials"]])
    sat, feat, sparse, layers = m["saturation"], m["features"], m["sparsity"], m["layers"]
    out += "<h3>Measurements (pre-trained model, before any training)</h3>" + table(["measurement", "value"], [
        ["inflection band (entropy + gradient decay)", f"layers {layers['inflection_layers']}"],
        ["saturated outputs (max p >= 0.95)", f"{sat['saturated_share']:.0%} of {sat['examples']} probe examples"],
        ["mean error signal 1/2 |p - y|_1", f"{sat['mean_error_signal']:.3f}"],
        ["linear probe of frozen features (validation)",
         f"{feat['accuracy']:.3f} vs majority {feat['majority_accuracy']:.3f}"],
        ["head-norm growth under LP", f"{feat['head_norm_growth']:.1f}x"],
        ["gradient share of the top 1% entries", f"{sparse['top_share']:.1%}"],
        ["measurement time", ", ".join(f"{k} {duration(v)}" for k, v in m["seconds"].items())],
    ], head=True)
    return out
