"""Matplotlib helpers: figures rendered to inline base64 PNG so the report needs nothing from the network."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers / CI
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(width: float = 6.0, height: float = 3.4):
    """A (fig, ax) pair with tunescope's default size."""
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.grid(alpha=0.3)
    return fig, ax


def integer_ticks(ax, axis: str = "x") -> None:
    """Ticks only at whole numbers on `axis`: steps, epochs and layers are counts, and a tick at step 2.5
    names a step that never happened."""
    from matplotlib.ticker import MaxNLocator

    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def figure_html(fig, alt: str) -> str:
    """An <img> tag holding the figure as an inline base64 PNG (closes the figure)."""
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def save_figure(fig, path) -> None:
    """Write the figure as a PNG file (for docs/results), atomically."""
    from tunescope.io import atomic_write

    png = figure_png(fig)
    atomic_write(path, lambda p: p.write_bytes(png))
