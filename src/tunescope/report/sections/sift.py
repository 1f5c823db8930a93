"""Report section: what SIFT trained (results["sift"]): k, budget, optimizer state, gradient share of the mask."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.sections import register_section
from tunescope.report.tables import key_values


@register_section("sift", "SIFT: sparse increment fine-tuning", order=33)
def sift(results: dict, run_dir: Path) -> str | None:
    res = results.get("sift")
    if not res:
        return None
    out = ("<p>Per target tensor the k = floor(rate &times; numel) + 1 entries with the largest |gradient| "
           "(summed over the selection batches) train; everything else but the head stays frozen. "
           "grad_topk_share = share of the squared selection gradient carried by the selected entries.</p>")
    return out + key_values(sorted(res.items()))
