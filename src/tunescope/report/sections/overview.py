"""Report sections: the warnings box at the very top (a collapsed classifier ...), then what was run (model,
data, strategy, sizes, parameters, majority-class baseline, time, config)."""

from __future__ import annotations

import html
from pathlib import Path

from tunescope.report.sections import register_section
from tunescope.report.tables import key_values

# Inline style: the page's stylesheet (report/html.py) has no warning class, and the box must stand out.
_BOX_STYLE = "background:#fdecea;border:1px solid #e0a39b;border-left:6px solid #c0392b;padding:.5em 1em"


@register_section("warnings", "Warnings", order=-100)
def warnings_box(results: dict, run_dir: Path) -> str | None:
    """Every entry of results.json `warnings` (e.g. kind "collapse"), in a red box before all other sections:
    a number that looks fine (accuracy 0.5 ...) must not be read without it."""
    items = [w for w in results.get("warnings") or [] if isinstance(w, dict)]
    if not items:
        return None
    lines = "".join(f"<li><b>{html.escape(str(w.get('kind', 'warning')))}</b>: "
                    f"{html.escape(str(w.get('message', '')))}</li>" for w in items)
    return f'<div class="warning" role="alert" style="{_BOX_STYLE}"><ul>{lines}</ul></div>'


@register_section("overview", "Overview", order=0)
def overview(results: dict, run_dir: Path) -> str | None:
    rows = [(k, results[k]) for k in ("model", "data", "strategy", "seed", "wall_seconds") if k in results]
    if "trainable_params" in results and "total_params" in results:
        share = results["trainable_params"] / max(results["total_params"], 1)
        rows.append(("trainable / total parameters",
                     f"{results['trainable_params']:,} / {results['total_params']:,} ({100 * share:.3g}%)"))
    for split, n in (results.get("data_sizes") or {}).items():
        rows.append((f"{split} examples", n))
    baseline = results.get("baseline") or {}
    if "accuracy" in baseline:
        label = baseline.get("majority_label", baseline.get("majority_class"))
        rows.append(("majority-class baseline (test accuracy of always predicting it)",
                     f"{label}: {baseline['accuracy']:.4f}"))
    if results.get("adapted_layers") is not None:
        rows.append(("adapted layers", results["adapted_layers"]))
    config = results.get("_config") or {}
    out = key_values(rows) if rows else ""
    if config:
        out += "<details><summary>resolved config</summary>" + key_values(sorted(config.items())) + "</details>"
    return out or None
