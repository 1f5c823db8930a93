"""Report section: learning curves from metrics.jsonl (training loss per optimizer step, validation accuracy per
epoch), with ticks only at whole steps and epochs."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.plots import figure_html, integer_ticks, new_figure
from tunescope.report.sections import register_section


def curve_figure(points: list[tuple[float, float]], xlabel: str, ylabel: str, marker: str = "."):
    """One curve of (x, y) points; x is a count (step, epoch), so its ticks are whole numbers."""
    fig, ax = new_figure()
    ax.plot(*zip(*points), marker=marker, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    integer_ticks(ax)
    return fig


@register_section("training", "Learning curves", order=10)
def learning_curves(results: dict, run_dir: Path) -> str | None:
    metrics = results.get("_metrics") or []
    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m and m.get("loss") is not None]
    evals = [(m["epoch"], m["eval_accuracy"]) for m in metrics if "eval_accuracy" in m]
    if not train and not evals:
        return None
    out = ""
    if train:
        out += figure_html(curve_figure(train, "optimizer step", "training loss"),
                           "training loss (y) per optimizer step (x)")
    if evals:
        out += figure_html(curve_figure(evals, "epoch", "validation accuracy", marker="o"),
                           "validation accuracy (y) per epoch (x)")
    return out
