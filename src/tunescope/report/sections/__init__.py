"""Report sections: one module per kind of result, so a new capability adds a section without touching others.

A section is `fn(results: dict, run_dir: Path) -> str | None` (an HTML fragment, or None when the run
has nothing for it), registered with `register_section(name, order)`. Sections render in `order`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SECTION_MODULES: tuple[str, ...] = (
    "tunescope.report.sections.overview",
    "tunescope.report.sections.plan",
    "tunescope.report.sections.diagnostics",
    "tunescope.report.sections.training",
    "tunescope.report.sections.evaluation",
    "tunescope.report.sections.comparison",
    "tunescope.report.sections.calibration",
    "tunescope.report.sections.lpft",
    "tunescope.report.sections.ntk",
    "tunescope.report.sections.landscape",
    "tunescope.report.sections.sift",
    "tunescope.report.sections.sparsity",
    "tunescope.report.sections.jump",
)


@dataclass
class Section:
    name: str
    title: str
    order: int
    render: Callable[[dict, Path], str | None]


SECTIONS: dict[str, Section] = {}


def register_section(name: str, title: str, order: int):
    """Decorator: register `fn(results, run_dir) -> html | None` as report section `name`."""

    def add(fn: Callable[[dict, Path], str | None]):
        if name in SECTIONS:
            raise ValueError(f"report section {name!r} is already registered")
        SECTIONS[name] = Section(name, title, order, fn)
        return fn

    return add


def all_sections() -> list[Section]:
    for module in SECTION_MODULES:
        importlib.import_module(module)
    return sorted(SECTIONS.values(), key=lambda s: s.order)
