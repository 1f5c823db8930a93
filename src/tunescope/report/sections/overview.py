"""Report sections: the warnings box at the very top (a collapsed classifier ...), then the summary: the
headline result against its baseline, what was run, what was adapted and why, the warnings (report/headline.py),
and the command line, provenance and resolved config folded away."""

from __future__ import annotations

import html
from pathlib import Path

from tunescope.report import headline
from tunescope.report.sections import register_section
from tunescope.report.tables import key_values, table

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


@register_section("overview", "Summary", order=0)
def overview(results: dict, run_dir: Path) -> str | None:
    """The headline (report/headline.py): the result against its baseline in bold, then what ran, what was
    adapted, the one reason why, and the warnings; the exact command line and the resolved config below."""
    rows = [("what ran", headline.ran(results))]
    for label, text in (("adapted", headline.adapted(results)), ("why", headline.reason(results))):
        if text:
            rows.append((label, text))
    rows.append(("warnings", headline.warnings_summary(results)))
    result = headline.result(results)
    out = f'<p class="headline">{html.escape(result)}</p>' if result else ""
    out += table(("", ""), rows, head=False)
    if results.get("command_line"):
        out += f"<p>command: <code>{html.escape(str(results['command_line']))}</code></p>"
    provenance = [(k, results[k]) for k in ("started_at", "schema_version") if k in results]
    provenance += sorted((results.get("versions") or {}).items())
    config = results.get("_config") or {}
    if provenance:
        out += "<details><summary>provenance (start time, versions)</summary>" + key_values(provenance) + \
               "</details>"
    if config:
        out += "<details><summary>resolved config</summary>" + key_values(sorted(config.items())) + "</details>"
    return out
