"""Small HTML table helpers shared by report sections."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence


def fmt(value) -> str:
    """Numbers with 4 significant digits, everything else as text, HTML-escaped."""
    if isinstance(value, bool) or value is None:
        return html.escape(str(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(items: Iterable[tuple[str, object]]) -> str:
    return table(("key", "value"), items)
