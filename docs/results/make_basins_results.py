"""Tables of docs/results/basins.md from basins experiment folders (numbers are read, never typed).

    .venv/bin/python docs/results/make_basins_results.py runs/exp/basins runs/exp/basins-s1
Prints one markdown table per folder (seed) and a seed-averaged GO comparison; copies the first folder's
basins_radii.png / basins_curves.png next to this file.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _landscape(folder: Path, run: str) -> dict:
    return json.loads((folder / run / "landscape" / "results.json").read_text())["basin"]


def seed_table(folder: Path) -> list[dict]:
    res = json.loads((folder / "basins.json").read_text())
    print(f"\n{folder} (seed {res['config']['seed']}, {res['wall_seconds'] / 60:.1f} min):\n")
    print("| run | GO sigma | RT test acc | S (64 ex.) | random radius, median (min-max) | worst radius | "
          "sft radius + / towards base | base at a = | evals / random direction | tweets probe acc | retention |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| pre-trained | - | - | - | - | - | - | - | - | {res['pretrained_probe_accuracy']:.4f} | 1 |")
    ascent = []
    for row in res["rows"]:
        basin = _landscape(folder, row["run"])
        rr, sft = basin["random"]["radii"], basin["sft"]
        print(f"| {row['run']} | {row['noise_sigma']:g} | {row['test_accuracy']:.4f} | {row['basin_score']:.4f} | "
              f"{row['random_median_radius']:.4f} ({min(rr):.4f}-{max(rr):.4f}) | {row['worst_radius']:.2e} | "
              f"{sft['radii_positive'][0]:.3g} / {row['sft_radius_towards_base']:.3g} | {sft['base_scale']:.3g} | "
              f"{row['evals_per_direction']:.1f} | {row['probe_accuracy']:.4f} | {row['probe_retention']:.3f} |")
        ascent.append(f"{row['run']} " + " -> ".join(f"{v:.2f}" for v in basin["worst"]["ascent_loss"][0]))
    print("\nworst-case ascent loss per step: " + "; ".join(ascent))
    return res["rows"]


def go_summary(rows_per_seed: list[list[dict]]) -> None:
    """Mean over seeds of each (strategy, sigma): does GO widen the random / worst-case radius?"""
    by_run: dict[str, list[dict]] = {}
    for rows in rows_per_seed:
        for row in rows:
            by_run.setdefault(row["run"], []).append(row)
    print(f"\nmean over {len(rows_per_seed)} seeds:\n")
    print("| run | seeds | RT test acc | random radius (median) | worst radius | retention |")
    print("|---|---|---|---|---|---|")
    for run, rows in by_run.items():
        def mean(key):
            return statistics.mean(r[key] for r in rows)
        print(f"| {run} | {len(rows)} | {mean('test_accuracy'):.4f} | {mean('random_median_radius'):.4f} | "
              f"{mean('worst_radius'):.2e} | {mean('probe_retention'):.3f} |")


if __name__ == "__main__":
    folders = [Path(p) for p in sys.argv[1:]]
    go_summary([seed_table(f) for f in folders])
    for name in ("basins_radii.png", "basins_curves.png"):
        shutil.copyfile(folders[0] / name, HERE / name)
