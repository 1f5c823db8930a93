"""Report section: the evaluation table (test metrics; per-epoch validation accuracy)."""

from __future__ import annotations

from pathlib import Path

from tunescope.report.sections import register_section
from tunescope.report.tables import key_values, table


@register_section("evaluation", "Evaluation", order=20)
def evaluation(results: dict, run_dir: Path) -> str | None:
    ev = results.get("eval")
    if not ev:
        return None
    scalars = [(f"test {k}" if k in ("accuracy", "nll") else k, v) for k, v in ev.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = key_values(scalars)
    by_epoch = ev.get("accuracy_by_epoch") or []
    if by_epoch:
        out += "<h3>Validation by epoch</h3>" + table(("epoch", "accuracy", "nll"),
                                                      [(e["epoch"], e["accuracy"], e.get("nll")) for e in by_epoch])
    return out
