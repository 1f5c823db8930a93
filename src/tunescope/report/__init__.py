"""Run results (results.json, metrics.jsonl) and the self-contained HTML report."""
