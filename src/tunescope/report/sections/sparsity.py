"""Report section: gradient quasi-sparsity (results["sparsity"]) as a curve and a per-tensor table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import table


def sparsity_figure(res: dict, title: str = "Gradient quasi-sparsity"):
    """Share of ||g||^2 carried by the top fraction p of entries (log x), overall and per tensor (median, range)."""
    fig, ax = new_figure()
    ax.semilogx(res["curve"]["fraction"], res["curve"]["share"], lw=2, label="all measured tensors")
    if "attention_qkvo" in res and res["attention_qkvo"].get("curve"):
        c = res["attention_qkvo"]["curve"]
        ax.semilogx(c["fraction"], c["share"], lw=1.5, ls="--", label="attention q,k,v,o")
    per = res.get("per_tensor") or []
    if per:
        fr = res["fractions"]
        vals = np.array([[t["share"][str(p)] for p in fr] for t in per])
        ax.fill_between(fr, vals.min(0), vals.max(0), alpha=0.2, label="per-tensor range")
        ax.plot(fr, np.median(vals, 0), "o", label="per-tensor median")
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    ax.axvline(0.01, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("fraction of entries (largest |g| first)")
    ax.set_ylabel("share of squared gradient norm")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


@register_section("sparsity", "Gradient quasi-sparsity", order=34)
def sparsity(results: dict, run_dir: Path) -> str | None:
    res = results.get("sparsity")
    if not res:
        return None
    fr = res["fractions"]
    out = ("<p>share_p = sum of the k = floor(p n) + 1 largest g_i^2 / sum of all g_i^2 (gradient summed over "
           f"{res.get('num_batches')} batch(es), {res.get('num_params', 0):,} entries). Paper (SIFT): "
           "&ldquo;1% of components carry 99% of the gradient&rdquo;.</p>")
    rows = [["all measured", *[f"{100 * res['overall'][str(p)]:.2f}%" for p in fr],
             f"{100 * res['entries_for_99']:.2f}%"]]
    if "attention_qkvo" in res:
        a = res["attention_qkvo"]
        rows.append(["attention q,k,v,o", *[f"{100 * a['overall'][str(p)]:.2f}%" for p in fr],
                     f"{100 * a['entries_for_99']:.2f}%"])
    for t in res.get("per_tensor", [])[:200]:
        rows.append([t["name"], *[f"{100 * t['share'][str(p)]:.2f}%" for p in fr], f"{100 * t['entries_for_99']:.2f}%"])
    out += figure_html(sparsity_figure(res), "share of squared gradient norm vs fraction of entries")
    out += table(["tensor", *[f"top {100 * p:g}%" for p in fr], "entries for 99%"], rows)
    return out
