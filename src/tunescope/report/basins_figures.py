"""Figures of the basins experiment (experiments/basins.py): one row per fine-tuned run, written as PNG files.

basins_radii.png    per run: the random radii (dots), the worst-case radius (x) and the sft radius (^), log a
basins_curves.png   S(theta + a delta) along the first random and the sft direction of every run
The curves come from each run's own landscape results (OUT/<run>/landscape/results.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt

from tunescope.report.plots import new_figure, save_figure

CURVE_KINDS = ("random", "sft")


def radii_figure(rows: list[dict]):
    """Radii per run (y) and direction type; x is the scale a, with ||a delta|| = a sqrt(d)."""
    fig, ax = new_figure(7.0, 3.4)
    for i, r in enumerate(rows):
        ax.scatter(r["random_radii"], [i] * len(r["random_radii"]), color="tab:blue", s=16, alpha=0.7,
                   label="random" if i == 0 else None)
        ax.scatter([r["worst_radius"]], [i], color="tab:red", marker="x", s=40, label="worst" if i == 0 else None)
        ax.scatter([r["sft_radius"]], [i], color="tab:green", marker="^", s=30, label="sft" if i == 0 else None)
    ax.set_yticks(range(len(rows)), [r["run"] for r in rows])
    ax.set_xscale("log")
    ax.set_xlabel("basin radius a (accuracy drop <= 0.05; ||a delta|| = a sqrt(d))")
    ax.legend(fontsize=8)
    return fig


def curves_figure(basins: dict[str, dict]):
    """One panel per kind in CURVE_KINDS: the first curve of that kind of every run (basins: run -> `basin`)."""
    fig, axes = plt.subplots(1, len(CURVE_KINDS), figsize=(9.0, 3.2), dpi=110)
    for run, basin in basins.items():
        for ax, kind in zip(axes, CURVE_KINDS, strict=True):
            c = basin.get("curves", {}).get(kind)
            if c:
                ax.plot(c["grid"], c["scores"][0], marker=".", label=run)
    for ax, kind in zip(axes, CURVE_KINDS, strict=True):
        ax.set_title(f"{kind} direction", fontsize=9)
        ax.set_xlabel("a")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (rotten_tomatoes)")
    axes[1].legend(fontsize=7)
    return fig


def plot_basins(result: dict, folder: str | Path) -> None:
    """Write FOLDER/basins_radii.png and FOLDER/basins_curves.png for a basins.json `result`."""
    folder = Path(folder)
    rows = result["rows"]
    save_figure(radii_figure(rows), folder / "basins_radii.png")
    basins = {r["run"]: json.loads((folder / r["run"] / "landscape" / "results.json").read_text())["basin"]
              for r in rows}
    save_figure(curves_figure(basins), folder / "basins_curves.png")
