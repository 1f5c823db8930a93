"""Report section: learning curves from metrics.jsonl (training loss per step, validation accuracy per epoch)."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section


@register_section("training", "Learning curves", order=10)
def learning_curves(results: dict, run_dir: Path) -> str | None:
    metrics = results.get("_metrics") or []
    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m and m.get("loss") is not None]
    evals = [(m["epoch"], m["eval_accuracy"]) for m in metrics if "eval_accuracy" in m]
    if not train and not evals:
        return None
    out = ""
    if train:
        fig, ax = new_figure()
        ax.plot(*zip(*train), marker=".", lw=1)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        out += figure_html(fig, "training loss per step")
    if evals:
        fig, ax = new_figure()
        ax.plot(*zip(*evals), marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        out += figure_html(fig, "validation accuracy per epoch")
    return out
