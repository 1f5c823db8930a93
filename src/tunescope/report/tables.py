"""Small HTML table helpers shared by report sections."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

# A formatted number ('0.009096', '40,386', '0.4491 ± 0.01', '1.5e-05', '12.6 s', '7 min 35 s'): such a cell never
# breaks inside the number (the page stylesheet lets other cells break anywhere so tables fit the page).
_NUMBER = re.compile(r"[-+]?[\d.,]+(e[-+]?\d+)?( ± [\d.]+(e[-+]?\d+)?)?( s| min \d+ s| h \d+ min)?")


class Html(str):
    """Text that is already HTML (a link, a formatted cell): `table` inserts it unescaped."""


def link(href: str, text: str) -> Html:
    """<a href=...>text</a>, both escaped; for relative links between the files of one run folder."""
    return Html(f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>')


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


def duration(seconds) -> str:
    """Wall time with its unit: '12.6 s' under a minute, '7 min 35 s' under an hour, '2 h 05 min' above."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "-"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def table(headers: Sequence[str], rows: Iterable[Sequence], *, head: bool = True) -> str:
    """An HTML table; cells through `fmt`, except `Html` cells (already markup, e.g. a link). `head=False`:
    no header row, the first column drawn as row headers (a key / value block)."""
    def cell(c) -> str:
        return c if isinstance(c, Html) else fmt(c)

    def td(c) -> str:
        text = cell(c)
        return f'<td class="num">{text}</td>' if _NUMBER.fullmatch(text) else f"<td>{text}</td>"

    if head:
        top = "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr></thead>"
        body = "".join("<tr>" + "".join(td(c) for c in row) + "</tr>" for row in rows)
    else:
        top = ""
        body = "".join(f"<tr><th>{cell(row[0])}</th>" + "".join(td(c) for c in row[1:]) + "</tr>" for row in rows)
    return f"<table>{top}<tbody>{body}</tbody></table>"


def key_values(items: Iterable[tuple[str, object]]) -> str:
    return table(("key", "value"), items)
