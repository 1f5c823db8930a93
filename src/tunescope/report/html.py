"""The self-contained HTML report of a run directory (inline PNG plots and CSS; nothing fetched)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import yaml

from tunescope.errors import UserError
from tunescope.io import atomic_write_text, read_jsonl
from tunescope.report.sections import all_sections

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em;max-width:100%}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}td.num{white-space:nowrap;overflow-wrap:normal}th{background:#f4f4f4}code{overflow-wrap:anywhere;font-size:.9em}
.headline{font-size:1.25em;font-weight:600;margin:.4em 0}
img{max-width:100%;display:block;margin:.6em 0}.muted{color:#777}.note{background:#fafae8;padding:.4em .7em}
"""
# overflow-wrap:anywhere lets a long path or command line in a cell break anywhere, so no table is wider than
# the page (a wide table scrolls the whole report sideways); headers are short words and wrap only between them.


RERUN = "rerun the command that made this run (its config.yaml holds the settings)"


def load_results(run_dir: Path) -> dict:
    """RUN_DIR/results.json as a dict; UserError naming the file when it is missing, truncated or not an object."""
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"{str(run_dir)!r} is not a finished tunescope run: no results.json")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"bad file {str(results_path)!r}: truncated or corrupt, not readable JSON ({e}); {RERUN}") \
            from None
    if not isinstance(results, dict):
        raise UserError(f"bad file {str(results_path)!r}: holds a JSON {type(results).__name__}, expected the "
                        f"object a finished run writes; {RERUN}")
    return results


def _load_config(run_dir: Path) -> dict:
    """RUN_DIR/config.yaml as a dict ({} when absent); UserError naming the file when it does not parse."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        return {}
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UserError(f"bad file {str(config_path)!r}: not readable YAML ({str(e).splitlines()[0]}); {RERUN}") \
            from None
    return config if isinstance(config, dict) else {}


def load_run(run_dir: Path) -> tuple[dict, dict, list[dict]]:
    """(results, config, metrics records) of a run directory; UserError when it is not one."""
    return load_results(run_dir), _load_config(run_dir), read_jsonl(run_dir / "metrics.jsonl")


def build_report(run_dir: str | Path) -> Path:
    """Render RUN_DIR/report.html from results.json, config.yaml and metrics.jsonl; returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {str(run_dir)!r} does not exist")
    results, config, metrics = load_run(run_dir)
    context = {**results, "_config": config, "_metrics": metrics}
    parts = []
    for section in all_sections():
        try:
            body = section.render(context, run_dir)
        except Exception as e:  # one broken section must not cost the whole report
            log.warning("report section %s failed: %s", section.name, e)
            body = f'<p class="note">This section could not be rendered: {html.escape(str(e))}</p>'
        if body:
            parts.append(f'<section id="{section.name}"><h2>{html.escape(section.title)}</h2>{body}</section>')
    title = results.get("title") or f"tunescope: {results.get('strategy', results.get('command', 'run'))} " \
                                      f"on {results.get('model', '')}"
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='muted'>{html.escape(str(run_dir.resolve()))}</p>{''.join(parts)}</body></html>\n")
    return atomic_write_text(run_dir / "report.html", page)
