"""Open a report.html in headless Chromium (Debian's package, driven by playwright) the way a person would, and
record what a person would not see: console errors, uncaught page errors and every network request.

Nothing may leave the machine: every request whose scheme is not file: or data: is aborted AND recorded, so a test
fails on it even though the page looked fine offline.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOCAL_SCHEMES = ("file:", "data:")


def chromium_path() -> str | None:
    """The system Chromium (`make browser` installs Debian's `chromium` when it is not on PATH)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Rendered:
    """What the browser showed and what it did while showing it."""

    text: str
    """document.body.innerText: the text a person reads (hidden <details> content excluded)."""
    console_errors: list[str] = field(default_factory=list)
    """console.error messages, failed loads and uncaught exceptions."""
    remote_requests: list[str] = field(default_factory=list)
    """Requests to anything but file: / data: (each was aborted)."""
    pixels: np.ndarray | None = None
    """The full-page screenshot, H x W x 3, uint8."""
    scroll_width: int = 0
    """document.scrollingElement.scrollWidth: wider than inner_width means the page scrolls sideways."""
    inner_width: int = 0
    sections: dict[str, str] = field(default_factory=dict)
    """innerText of every <section id=...>, by id."""


def render(browser, page_path: Path, *, width: int = 1280, height: int = 900) -> Rendered:
    """Load `page_path` in a fresh context of `browser` (a playwright Browser) with a `width` x `height` viewport."""
    from PIL import Image

    context = browser.new_context(viewport={"width": width, "height": height})
    remote: list[str] = []

    # Every request is announced (recorded below) before the route decides; a remote one is then aborted, so
    # nothing leaves the machine and the test still sees that the page asked for it.
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES)
                  else route.abort())
    page = context.new_page()
    errors: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(LOCAL_SCHEMES) else remote.append(r.url))
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"failed to load {r.url}: {r.failure}"))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        shot = page.screenshot(full_page=True)
        scroll_width, inner_width = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
        sections = page.evaluate("Object.fromEntries([...document.querySelectorAll('section[id]')]"
                                 ".map(s => [s.id, s.innerText]))")
        text = page.inner_text("body")
    finally:
        context.close()
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    return Rendered(text=text, console_errors=errors, remote_requests=remote, pixels=pixels,
                    scroll_width=scroll_width, inner_width=inner_width, sections=sections)


def is_blank(pixels: np.ndarray) -> bool:
    """True when the screenshot is (nearly) one colour: the grey-level standard deviation is below 1 or fewer than
    0.5% of the pixels differ from the most common colour (a white page with a stray line)."""
    grey = pixels.astype(np.float64).mean(axis=2)
    _, counts = np.unique(grey.round(), return_counts=True)
    background_share = counts.max() / grey.size
    return grey.std() < 1.0 or background_share > 0.995
