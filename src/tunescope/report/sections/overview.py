"""Report section: what was run (model, data, strategy, sizes, parameters, time, config)."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.sections import register_section
from tunescope.report.tables import key_values


@register_section("overview", "Overview", order=0)
def overview(results: dict, run_dir: Path) -> str | None:
    rows = [(k, results[k]) for k in ("model", "data", "strategy", "seed", "wall_seconds") if k in results]
    if "trainable_params" in results and "total_params" in results:
        share = results["trainable_params"] / max(results["total_params"], 1)
        rows.append(("trainable / total parameters",
                     f"{results['trainable_params']:,} / {results['total_params']:,} ({100 * share:.3g}%)"))
    for split, n in (results.get("data_sizes") or {}).items():
        rows.append((f"{split} examples", n))
    if results.get("adapted_layers") is not None:
        rows.append(("adapted layers", results["adapted_layers"]))
    config = results.get("_config") or {}
    out = key_values(rows) if rows else ""
    if config:
        out += "<details><summary>resolved config</summary>" + key_values(sorted(config.items())) + "</details>"
    return out or None
