"""Report section: loss-landscape basins (radius distributions per direction type, 1-D curves, bounds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import key_values, table

COLORS = {"random": "tab:blue", "worst": "tab:red", "sft": "tab:green"}


def radii_figure(basin: dict):
    """Strip plot of the radii of every direction type (log scale), medians marked."""
    fig, ax = new_figure(6.0, 2.8)
    kinds = basin["direction_types"]
    for y, kind in enumerate(kinds):
        r = np.asarray(basin[kind]["radii"], dtype=float)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, r.size)
        ax.scatter(np.maximum(r, 1e-12), y + jitter, color=COLORS.get(kind, "k"), alpha=0.7, s=18)
        ax.plot([basin[kind]["median_radius"]] * 2, [y - 0.3, y + 0.3], color="k", lw=1.5)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xscale("log")
    ax.set_xlabel("basin radius a  (||a delta|| = a sqrt(d))")
    ax.set_title(f"radius: S(theta + a delta) >= S(theta) - {basin['tau']:g}", fontsize=9)
    return fig


def curves_figure(basin: dict):
    """S(theta + a delta) along the first directions of each type, with the basin floor."""
    fig, ax = new_figure(6.0, 3.2)
    for kind, c in basin.get("curves", {}).items():
        for i, scores in enumerate(c["scores"]):
            ax.plot(c["grid"], scores, color=COLORS.get(kind, "k"), alpha=0.8, label=kind if i == 0 else None)
    ax.axhline(basin["threshold"], color="gray", ls="--", lw=1, label="floor S(theta) - tau")
    ax.set_xlabel("scale a along delta")
    ax.set_ylabel("score")
    ax.legend(fontsize=8)
    return fig


@register_section("landscape", "Loss-landscape basins", order=28)
def landscape(results: dict, run_dir: Path) -> str | None:
    basin = results.get("basin")
    if not basin or not basin.get("direction_types"):
        return None
    out = key_values([("score S(theta)", basin["score"]), ("basin floor", basin["threshold"]),
                      ("scope", basin["scope"]), ("d (parameters moved)", basin["dim"]),
                      ("normalisation", basin["normalization"]),
                      ("bisection tolerance (relative)", basin["rtol"])])
    rows = []
    for kind in basin["direction_types"]:
        b = basin[kind]
        q = b["quantiles"]
        rows.append((kind, len(b["radii"]), b["median_radius"], q["q10"], q["q90"], b["median_l2_radius"],
                     b["evaluations_per_direction"], b["cp_lower_bound"]))
    out += table(("directions", "m", "median radius a", "q10", "q90", "median L2 radius", "evals / direction",
                  f"CP lower bound, fraction inside at a={basin['cp_scale']:.3g}"), rows)
    out += figure_html(radii_figure(basin), "basin radii per direction type")
    if basin.get("curves"):
        out += figure_html(curves_figure(basin), "1-D loss-landscape curves")
    if "sft" in basin and "base_scale" in basin["sft"]:
        out += (f"<p>Along the fine-tuning direction the base model sits at a = {basin['sft']['base_scale']:.4g} "
                f"(negative side); the basin reaches a = -{basin['sft']['radii_negative'][0]:.4g} there.</p>")
    cert = basin.get("certificate")
    if cert:
        out += "<h3>Certified radius (Gaussian-smoothed score)</h3>" + key_values([
            ("sigma", cert["sigma"]), ("noise draws", cert["n_draws"]), ("smoothed score", cert["smoothed_score"]),
            (f"p_A (Clopper-Pearson, {cert['confidence']:.0%})", cert["p_a"]), ("q", cert["q"]),
            ("certified L2 radius sigma (Phi^-1(p_A) - Phi^-1(q))", cert["radius"]),
            ("per sqrt(d)", cert["radius_per_sqrt_d"])])
    return out
