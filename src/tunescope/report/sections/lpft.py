"""Report section: LP-FT quantities: head norm ||V||_F through the run, LP fit, and feature change."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import key_values, table


@register_section("lpft", "Head norm and feature change (LP-FT)", order=24)
def lpft(results: dict, run_dir: Path) -> str | None:
    """Only for a run with a linear-probe stage (head, lp-ft, lp-lora: `lp` or `head_norm.after_lp` present):
    every classification run records head_norm and feature_change, but without the LP stage they are not the
    LP-FT story, and the comparison table of `tunescope compare` shows them side by side."""
    norms = results.get("head_norm") or {}
    fc = results.get("feature_change")
    lp = results.get("lp")
    if not lp and norms.get("after_lp") is None:
        return None
    out = ""
    if norms:
        stages = [s for s in ("init", "after_lp", "after_ft") if norms.get(s) is not None]
        out += "<p>||V||_F of the head's final linear layer (see docs/lpft.md for what the head is).</p>"
        out += table(("stage", "head norm"), [(s, norms[s]) for s in stages])
        fig, ax = new_figure(4.5, 2.8)
        ax.bar(stages, [norms[s] for s in stages], color="tab:purple")
        ax.set_ylabel("head norm ||V||_F")
        out += figure_html(fig, "head norm by stage")
    if lp:
        out += "<h3>Linear probe</h3>" + key_values(sorted(lp.items()))
    if fc:
        out += ("<h3>Feature change on the test split</h3><p>cosine = mean cos(phi0(x), phi(x)); l2 = mean "
                "||phi(x) - phi0(x)||; phi0 from the pre-trained model.</p>" + key_values(sorted(fc.items())))
    return out
