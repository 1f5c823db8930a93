"""Shared reading and writing of the LLM result pages (llm_sift.md, llm_basins.md, llm_inflection.md).

The pages hold prose written by hand and generated blocks between `<!-- BEGIN name -->` and `<!-- END name -->`
markers; `fill_page` replaces only the blocks, so every number in a table comes from a run directory.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def load(root: Path, name: str) -> dict | None:
    """results.json of run `name` under `root`, or None when the run has not finished."""
    path = root / name / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def train_seconds(root: Path, name: str) -> float | None:
    """The Trainer's train_runtime (training only, no evaluation) from the run's metrics.jsonl, summed over the
    segments of a resumed run."""
    path = root / name / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    runtimes = [r["train_runtime"] for r in rows if "train_runtime" in r]
    return sum(runtimes) if runtimes else None


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """'m ± sd (a, b)' of `values` * scale; a single value is printed alone."""
    vals = [scale * v for v in values]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    per = ", ".join(f"{v:.{digits}f}" for v in vals)
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f} ({per})"


def mib(n: float) -> str:
    return f"{n / 2 ** 20:,.1f}"


def command_block(root: Path, names: list[str]) -> str:
    """The exact command line of each finished run, as recorded in its results.json."""
    lines = []
    for name in names:
        res = load(root, name)
        if res is not None:
            lines.append(f"OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 {res['command_line']}")
    return "```\n" + "\n".join(lines) + "\n```"


def fill_page(page: Path, blocks: dict[str, str]) -> None:
    """Replace each `<!-- BEGIN name -->...<!-- END name -->` block of `page` with blocks[name]."""
    text = page.read_text()
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{page.name}: no block {name!r} (add <!-- BEGIN {name} --> / <!-- END {name} -->)")
        text = pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)
    page.write_text(text)
