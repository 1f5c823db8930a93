"""Tables of docs/results/jreg.md from `tunescope pretrain` run folders (numbers are read, never typed).

    .venv/bin/python docs/results/make_jreg_results.py runs/exp/jreg/small-s0-plain runs/exp/jreg/small-s0-jreg
Prints the final-checkpoint table (same columns as jreg.md) and every checkpoint of each run.
Psi_L / mean(Psi_2..Psi_{L-1}) compares the last block with the middle ones (Psi_1 dominates small models).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def _middle_ratio(psi: list[float]) -> float:
    return psi[-1] / statistics.mean(psi[1:-1])


def final_row(run: Path) -> str:
    res = json.loads((run / "results.json").read_text())
    last = res["checkpoints"][-1]
    psi = last["psi"]
    probe = res.get("probe", {}).get("accuracy")
    return (f"| {run.name} | {res['total_params']:,} | {res['jreg']['lambda']:g} | {last['step']} | "
            f"{last['heldout_ppl']:.1f} | {psi[0]:.4f} | {statistics.mean(psi[1:-1]):.4f} | {psi[-1]:.4f} | "
            f"{last['zeta_L']:.3f} | {last['J']:.3f} | {_middle_ratio(psi):.3f} | "
            f"{'-' if probe is None else f'{probe:.3f}'} | {res['wall_seconds'] / 60:.1f} |")


def checkpoint_line(run: Path) -> str:
    res = json.loads((run / "results.json").read_text())
    parts = [f"{c['step']}: {c['heldout_ppl']:.0f} / {c['psi'][-1]:.4f} / {c['zeta_L']:.2f} / {c['J']:.3f} / "
             f"{_middle_ratio(c['psi']):.2f}" for c in res["checkpoints"]]
    return f"- {run.name}: " + "; ".join(parts)


if __name__ == "__main__":
    runs = [Path(p) for p in sys.argv[1:]]
    print("| run | parameters | lambda | step | held-out ppl | Psi_1 | mean Psi_2..L-1 | Psi_L | zeta_L | J | "
          "Psi_L / mean Psi_2..L-1 | probe acc | wall min |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(final_row(run))
    print("\nEvery checkpoint (step: held-out ppl / Psi_L / zeta_L / J / Psi_L over mean Psi_2..L-1):\n")
    for run in runs:
        print(checkpoint_line(run))
