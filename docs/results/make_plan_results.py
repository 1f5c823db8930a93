"""Tables and the plot of docs/results/plan.md from the suite's folders (docs/results/plan_suite.py).

    .venv/bin/python docs/results/make_plan_results.py runs/exp/plan-suite

Per cell (setting x seed): the oracle = every candidate trained fully (its test accuracy), the choice of the plan
(the default: rules prune, one round of trials), of the rules alone and of the trials alone, each one's test accuracy (= the oracle run of the
chosen strategy: same config and seed; `tunescope run` continues the winner's trial, which gives the same model),
regret = best oracle accuracy - the choice's, and the cost of the plan + its final training as a share of
training every candidate fully: in optimizer steps (trial steps + the final run's steps after the winner's trial,
over candidates x schedule; independent of the machine's load) and in wall time (measured while other jobs shared
the CPU, so only indicative). Numbers are read from results.json files, never typed.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METHODS = {"full": "plan: rules prune, one round of trials (default)", "rules": "rules alone (no trials)",
           "trials": "trials alone (no rules)"}
FIXED = ("lora", "full")  # fixed defaults shown for context: always LoRA everywhere, always full FT


def _load(path: Path) -> dict | None:
    f = path / "results.json"
    return json.loads(f.read_text()) if f.is_file() else None


def cells(root: Path) -> list[dict]:
    out = []
    for seed_dir in sorted(root.glob("*/budget-*/seed*")):
        oracle = {d.name: _load(d) for d in sorted((seed_dir / "oracle").glob("*"))}
        if not oracle or any(v is None for v in oracle.values()):
            continue
        plans = {m: _load(seed_dir / f"plan-{m}") for m in METHODS}
        refused = {m for m in METHODS if plans[m] is None and (seed_dir / f"plan-{m}.failed.json").is_file()}
        if any(plans[m] is None and m not in refused for m in METHODS):
            continue
        acc = {k: v["eval"]["accuracy"] for k, v in oracle.items()}
        wall = {k: v["wall_seconds"] for k, v in oracle.items()}
        best = max(acc.values())
        row = {"setting": f"{seed_dir.parts[-3]} / {seed_dir.parts[-2].replace('budget-', '').replace('pct', '%')}",
               "seed": int(seed_dir.name[4:]), "oracle": acc, "best": best,
               "best_strategy": max(acc, key=acc.get), "majority": oracle[next(iter(oracle))]["baseline"]["accuracy"],
               "oracle_seconds": sum(wall.values())}
        for mode, res in plans.items():
            if mode in refused:  # the plan stopped with exit 2: no model, so its accuracy is the majority class's
                row[mode] = {"strategy": "(none)", "accuracy": row["majority"], "regret": best - row["majority"],
                             "cost": float("nan"), "cost_wall": float("nan"), "plan_seconds": float("nan"),
                             "rules": []}
                continue
            p = res["plan"]
            chosen = p["strategy"]
            final = wall[chosen] * (1 - (p.get("winner_steps") or 0) / max(p["total_steps"], 1))
            # cost in optimizer steps (independent of the machine's load): the trials' steps + what the final run
            # trains after the winner's trial, over every candidate's full schedule; and in wall time (noisy).
            steps = p["trial_steps"] + p["total_steps"] - (p.get("winner_steps") or 0)
            row[mode] = {"strategy": chosen, "accuracy": acc[chosen], "regret": best - acc[chosen],
                         "cost": steps / (len(acc) * p["total_steps"]),
                         "cost_wall": (p["seconds"] + final) / row["oracle_seconds"], "plan_seconds": p["seconds"],
                         "rules": [r["name"] for r in p["rules_fired"]]}
        for s in FIXED:
            if s in acc:
                row[f"always-{s}"] = {"accuracy": acc[s], "regret": best - acc[s]}
        out.append(row)
    return out


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def tables(root: Path) -> None:
    rows = cells(root)
    settings = sorted({r["setting"] for r in rows}, key=lambda s: [r["setting"] for r in rows].index(s))
    print(f"{len(rows)} cells (setting x seed) finished\n")
    strategies = sorted({s for r in rows for s in r["oracle"]})
    print("| setting | seeds | majority | " + " | ".join(strategies) + " |")
    print("|---|---|---|" + "---|" * len(strategies))
    for st in settings:
        rs = [r for r in rows if r["setting"] == st]
        print(f"| {st} | {len(rs)} | {statistics.mean(r['majority'] for r in rs):.3f} | " + " | ".join(
            _ms([r["oracle"][s] for r in rs if s in r["oracle"]]) for s in strategies) + " |")
    print("\n| setting | oracle best (per seed) | plan's choice (per seed) | plan accuracy | regret (points) | "
          "cost of plan + final (steps) | rules alone: choice / regret | trials alone: choice / regret |")
    print("|---|---|---|---|---|---|---|---|")
    for st in settings:
        rs = sorted([r for r in rows if r["setting"] == st], key=lambda r: r["seed"])
        print(f"| {st} | {', '.join(r['best_strategy'] for r in rs)} | {', '.join(r['full']['strategy'] for r in rs)} "
              f"| {_ms([r['full']['accuracy'] for r in rs])} | {100 * statistics.mean(r['full']['regret'] for r in rs):.1f} "
              f"(max {100 * max(r['full']['regret'] for r in rs):.1f}) | {100 * statistics.mean(r['full']['cost'] for r in rs):.0f}% "
              f"| {', '.join(r['rules']['strategy'] for r in rs)} / {100 * statistics.mean(r['rules']['regret'] for r in rs):.1f} "
              f"| {', '.join(r['trials']['strategy'] for r in rs)} / {100 * statistics.mean(r['trials']['regret'] for r in rs):.1f} |")
    print("\n| method | mean regret (points) | worst setting (mean over seeds) | worst cell | mean cost (steps) | "
          "mean cost (wall time) |")
    print("|---|---|---|---|---|---|")
    for key, name in [*METHODS.items(), *((f"always-{s}", f"always {s}") for s in FIXED)]:
        rs = [r for r in rows if key in r]
        if not rs:
            continue
        per_setting = [statistics.mean(r[key]["regret"] for r in rs if r["setting"] == st) for st in settings
                       if any(r["setting"] == st for r in rs)]
        cost = (f"{100 * statistics.mean(r[key]['cost'] for r in rs):.0f}%" if "cost" in rs[0][key] else "-")
        wall = (f"{100 * statistics.mean(r[key]['cost_wall'] for r in rs):.0f}%" if "cost" in rs[0][key] else "-")
        print(f"| {name} | {100 * statistics.mean(r[key]['regret'] for r in rs):.2f} | "
              f"{100 * max(per_setting):.1f} | {100 * max(r[key]['regret'] for r in rs):.1f} | {cost} | {wall} |")
    print("\nrules fired (plan, per cell):")
    for r in rows:
        print(f"- {r['setting']} seed {r['seed']}: {', '.join(r['full']['rules'])}")
    _plot(rows, settings)


def _plot(rows: list[dict], settings: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [*METHODS, *(f"always-{s}" for s in FIXED)]
    labels = [*METHODS.values(), *(f"always {s}" for s in FIXED)]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(zip(keys, labels)):
        vals = [100 * statistics.mean(r[key]["regret"] for r in rows if r["setting"] == st and key in r)
                if any(key in r for r in rows if r["setting"] == st) else np.nan for st in settings]
        ax.bar(np.arange(len(settings)) + i * width, vals, width, label=label)
    ax.set_xticks(np.arange(len(settings)) + 0.4 - width / 2, settings, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("regret (accuracy points)")
    ax.axhline(1.0, color="grey", ls=":", lw=0.8)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("Regret vs the best strategy trained fully (mean over seeds)")
    fig.tight_layout()
    fig.savefig(Path(__file__).parent / "plan_regret.png", dpi=110)


if __name__ == "__main__":
    tables(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/exp/plan-suite"))
