"""Figures of a finished `tunescope transfer` experiment (its results.json `transfer` block), for docs/results.

accuracy    target test accuracy per source regime and strategy (the report section's own bar chart)
profiles    per-layer diagnostics of each source model on the target probe batches, the inflection band shaded
delta_cka   mean Delta-CKA (source -> target) per layer over seeds, one panel per source regime
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from tunescope.report.sections.diagnostics import transfer_figure


def profiles_figure(t: dict):
    """One panel per recorded metric's headline key (registry order, label and scale), one line per regime."""
    from tunescope.diagnostics.metrics import layer_metrics

    regimes = list(t["summary"])
    # runs cached before a metric was registered lack its key, hence .get
    before = [row for r in t["runs"] for row in (r["diagnostics_before"] or [])]
    metrics = [m for m in layer_metrics(recorded_only=True) if any(m.name in row for row in before)]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4 * max(len(metrics), 1), 3.2), dpi=110,
                             squeeze=False)
    axes = axes[0]
    for regime in regimes:
        run = next((r for r in t["runs"] if r["regime"] == regime and r["diagnostics_before"]), None)
        if run is None:
            continue
        rows = run["diagnostics_before"]
        for i, (ax, metric) in enumerate(zip(axes, metrics)):
            line, = ax.plot([r["layer"] for r in rows], [r.get(metric.name, np.nan) for r in rows], marker="o",
                            label=f"{regime.upper()} source")
            if run.get("inflection_layers") and i == 0:  # the band once, on the first panel
                band = run["inflection_layers"]
                ax.axvspan(min(band) - 0.5, max(band) + 0.5, color=line.get_color(), alpha=0.12)
            ax.set_title(metric.columns[0].title, fontsize=9)
            ax.set_xlabel("layer (0-based)", fontsize=8)
            ax.grid(alpha=0.3)
            if metric.log_scale:
                ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle("source models on target probe batches (shaded: selected inflection band)", fontsize=10)
    return fig


def delta_cka_figure(t: dict):
    """Per regime: mean over seeds (NaN-aware) of Delta-CKA per layer, one line per target strategy."""
    regimes = list(t["summary"])
    fig, axes = plt.subplots(1, len(regimes), figsize=(5 * len(regimes), 3.2), dpi=110, squeeze=False)
    for ax, regime in zip(axes[0], regimes):
        for strategy in t["summary"][regime]:
            runs = [r for r in t["runs"] if r["regime"] == regime and r["strategy"] == strategy
                    and r["diagnostics_after"]]
            if not runs:
                continue
            cka = np.array([[row.get("delta_cka", np.nan) for row in r["diagnostics_after"]] for r in runs])
            ax.plot(range(cka.shape[1]), np.nanmean(cka, axis=0), marker="o", label=strategy)
        ax.set_title(f"Delta-CKA source -> target, {regime.upper()} source", fontsize=9)
        ax.set_xlabel("layer (0-based)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def transfer_figures(results: dict) -> dict:
    """{"accuracy": fig, "profiles": fig, "delta_cka": fig} of a transfer experiment's results."""
    t = results["transfer"]
    return {"accuracy": transfer_figure(t["summary"]), "profiles": profiles_figure(t),
            "delta_cka": delta_cka_figure(t)}
