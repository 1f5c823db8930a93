"""Report section: per-layer diagnostics, one panel per metric key, the selected inflection band shaded.

Which panels exist, their titles, units and scales come from the metric registry (diagnostics.metrics), so
a newly registered metric is drawn and tabulated without an edit here.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from tunescope.diagnostics.metrics import table_columns
from tunescope.report import headline
from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import table


def _finite(values) -> bool:
    return any(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _present(rows: list[dict]):
    """(metric, column) pairs of the registry with at least one finite value in `rows`, in display order."""
    return [(m, c) for m, c in table_columns() if _finite([r.get(c.key, float("nan")) for r in rows])]


def layer_figure(rows: list[dict], band: list[int], after: list[dict] | None = None, title: str = ""):
    """A grid of per-layer plots (one per metric key present), `band` shaded; `after` drawn dashed if given.

    A metric without a recorder (a comparison such as Delta-CKA) has no separate fine-tuned profile.
    """
    import matplotlib.pyplot as plt

    present = _present(rows)
    cols = 3
    n_rows = max(1, math.ceil(len(present) / cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(4.2 * cols, 2.8 * n_rows), dpi=110, squeeze=False)
    layers = [r["layer"] for r in rows]
    for ax, (metric, col) in zip(axes.flat, present):
        ax.grid(alpha=0.3)
        if band:
            ax.axvspan(min(band) - 0.5, max(band) + 0.5, color="tab:orange", alpha=0.2, label="inflection band")
        ax.plot(layers, [r.get(col.key, float("nan")) for r in rows], marker="o", label="pre-trained")
        if after and metric.recorded and _finite([r.get(col.key, float("nan")) for r in after]):
            ax.plot(layers, [r.get(col.key, float("nan")) for r in after], marker="x", ls="--", label="fine-tuned")
        if col.log_scale:
            ax.set_yscale("log")
        ax.set_title(col.title, fontsize=9)
        ax.set_xlabel("layer (0-based)", fontsize=8)
        ax.set_xticks(layers)
    for ax in list(axes.flat)[len(present):]:
        ax.axis("off")
    if present:
        axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


@register_section("diagnostics", "Layer diagnostics and inflection layers", order=5)
def diagnostics_section(results: dict, run_dir: Path) -> str | None:
    found = results.get("diagnostics")
    if not found or not found.get("layers"):
        return None
    rows, band = found["layers"], found.get("inflection_layers") or []
    after = (results.get("diagnostics_after") or {}).get("layers")
    # The summary at the top already gives one reason for what was adapted; repeat the selection's reason here
    # only when the summary gave another (a plan's rule, layers given explicitly).
    why = found.get("reason") or ""
    said = why == headline.reason(results)
    out = [f"<p><b>Inflection layers {html.escape(str(band))}</b> (shaded)"
           + (": why, see the summary at the top" if said else f": {html.escape(why)}" if why else "") + ".</p>"]
    alt = "per-layer diagnostics: " + "; ".join(c.title for _, c in _present(rows))
    out.append(figure_html(layer_figure(rows, band, after), alt))
    columns = [c for _, c in table_columns() if any(c.key in r for r in rows)]
    scores = found.get("scores") or [float("nan")] * len(rows)
    out.append(table(["layer", *[c.key for c in columns], "score"],
                     [[r["layer"], *[r.get(c.key) for c in columns], s] for r, s in zip(rows, scores)]))
    out.append(table(["key", "definition"], [[c.key, c.description] for c in columns]))
    return "\n".join(out)


def transfer_figure(summary: dict):
    """Grouped bars: target accuracy (mean +- std over seeds) per source regime and strategy."""
    fig, ax = new_figure(6.0, 3.4)
    regimes = list(summary)
    present = {s for r in summary.values() for s in r}
    known = [s for s in ("full", "lora", "lora-inflection") if s in present]
    strategies = known + sorted(present - set(known))
    width = 0.8 / max(len(strategies), 1)
    for j, strategy in enumerate(strategies):
        xs = [i + (j - (len(strategies) - 1) / 2) * width for i in range(len(regimes))]
        means = [summary[r].get(strategy, {}).get("accuracy_mean", float("nan")) for r in regimes]
        stds = [summary[r].get(strategy, {}).get("accuracy_std", 0.0) for r in regimes]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=strategy)
    ax.set_xticks(range(len(regimes)))
    ax.set_xticklabels([r.upper() + " source" for r in regimes])
    ax.set_ylabel("target test accuracy")
    finite = [s["accuracy_mean"] for r in summary.values() for s in r.values()]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.1), min(1.0, max(finite) + 0.05))
    ax.legend(fontsize=8)
    return fig


@register_section("transfer", "Transfer: source regime x target strategy", order=6)
def transfer_section(results: dict, run_dir: Path) -> str | None:
    t = results.get("transfer")
    if not t:
        return None
    rows = []
    for regime, by_strategy in t["summary"].items():
        for strategy, s in by_strategy.items():
            rows.append([regime, strategy, s["accuracy_mean"], s["accuracy_std"], s["n"], s["trainable_params"]])
    out = [table(["source regime", "target strategy", "accuracy mean", "std", "seeds", "trainable params"], rows),
           figure_html(transfer_figure(t["summary"]), "target accuracy per regime and strategy")]
    src = [[r, s["epochs"], s["train_loss_final"], s["source_test_accuracy"]] for r, s in t["sources"].items()]
    out.append(table(["source regime", "epochs", "final training loss", "source test accuracy"], src))
    f = t["finding"]
    verdict = {True: "reproduces", False: "does not reproduce", None: "not decidable from these runs"}[f["reproduces"]]
    out.append(f"<p>Paper's finding ({html.escape(f['criterion'])}): <b>{verdict}</b>; gains "
               f"{html.escape(json.dumps(f['gains']))}</p>")
    return "\n".join(out)
