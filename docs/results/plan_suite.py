"""The plan's evidence suite (docs/results/plan.md): settings x seeds; per cell the oracle (every candidate trained
fully), the plan (rules prune, one round of trials) and its ablations (rules alone, trials alone).

    .venv/bin/python docs/results/plan_suite.py run  runs/exp/plan-suite [--seeds 0,1,2] [--shard 0/2]  # resumable
    .venv/bin/python docs/results/plan_suite.py table runs/exp/plan-suite                 # tables + plot

Every run is a sub-run in its own folder: finished ones are reused, so the suite can be stopped and continued.
Seed-major order: all settings of seed 0 first, so a partial suite has whole seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Scale (CPU budget of one session on 2 shared cores): 500 examples per split, 32 tokens, 3 epochs of batch 32 =
# 48 optimizer steps per run; trials rung at 8, 16, 32 steps.
SCALE = {"limit": 500, "max_length": 32, "epochs": 3.0, "batch_size": 32, "feature_change": False,
         "plan_probe_examples": 256, "trial_steps": 8}
CANDIDATES = ["full", "lora", "lp-ft", "sift", "lp-lora", "lora-inflection"]
BUDGETS = {"none": None, "1%": "1%"}
STARTS = {"rt-pretrained": ("minilm-l6", "rotten_tomatoes"), "tweets-pretrained": ("minilm-l6", "tweets_sentiment"),
          "rt-from-UNDER": ("UNDER", "rotten_tomatoes"), "rt-from-OVER": ("OVER", "rotten_tomatoes")}
# full: the default (rules reject, every candidate left in one round of trials); rules / trials: the ablations.
MODES = ("full", "rules", "trials")


def source_models(root: Path) -> dict[str, str]:
    """The UNDER / OVER source checkpoints of `tunescope transfer` (tweets_sentiment, full FT), at suite scale."""
    from tunescope.experiments.transfer import TransferConfig, run_source

    # OVER: 20 epochs, until the training loss is near 0 (8 epochs left it at 0.23 at this scale).
    cfg = TransferConfig(source_limit=SCALE["limit"], max_length=SCALE["max_length"], batch_size=32, over_epochs=20)
    out = {}
    for regime in ("under", "over"):
        ckpt, summary = run_source(cfg, regime, root / "sources" / f"{regime}-e{cfg.over_epochs:g}"
                                   if regime == "over" else root / "sources" / regime)
        out[regime.upper()] = str(ckpt)
        print(f"source {regime}: {summary}", flush=True)
    return out


def cell_config(start: str, budget: str, seed: int, sources: dict, mode: str = "full"):
    from tunescope.experiments.plan import PlanConfig

    model, data = STARTS[start]
    return PlanConfig(model=sources.get(model, model), data=data, seed=seed, budget_params=BUDGETS[budget],
                      candidates=CANDIDATES, plan_mode=mode, **SCALE)


def oracle_candidates(config) -> list:
    """The candidates the plan weighs, with their budget-fitted settings (no rule applied but the budget)."""
    from tunescope.diagnostics.layerwise import diagnose
    from tunescope.diagnostics.options import draw_probe
    from tunescope.experiments.plan import candidate_pool, finetune_config
    from tunescope.planning.budget import param_budget, total_params
    from tunescope.tasks import TASKS

    loaded = TASKS.get("classification").load(finetune_config(config))
    band = diagnose(loaded.model, draw_probe(config, loaded.tokenized["train"], loaded.tokenizer))[0]
    budget = param_budget(config.budget_params, total_params(loaded.model))
    pool, _ = candidate_pool(loaded.model, config, band["inflection_layers"], budget)
    return [c for c in pool if c.strategy in CANDIDATES and (budget is None or c.trainable_params <= budget)]


def run_cell(root: Path, start: str, budget: str, seed: int, sources: dict) -> None:
    from tunescope.errors import UserError
    from tunescope.experiments.finetune import finetune
    from tunescope.experiments.plan import finetune_config, plan
    from tunescope.experiments.recipe import run_sub_run
    from tunescope.experiments.rundir import RunDir

    cell = root / start / f"budget-{budget.replace('%', 'pct')}" / f"seed{seed}"
    config = cell_config(start, budget, seed, sources)
    listing = cell / "oracle.json"
    if not listing.is_file():
        cands = oracle_candidates(config)
        cell.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps([{"strategy": c.strategy, "settings": c.settings,
                                        "trainable_params": c.trainable_params} for c in cands], indent=1))
    for c in json.loads(listing.read_text()):
        ft = finetune_config(config, **{**c["settings"], "strategy": c["strategy"]})
        rd = RunDir(cell / "oracle" / c["strategy"])
        t = time.perf_counter()
        run_sub_run(rd, ft, lambda resume, overwrite, ft=ft, rd=rd: finetune(ft, rd.path, resume=resume,
                                                                               overwrite=overwrite, write_report=False))
        print(f"{cell.relative_to(root)} oracle {c['strategy']}: {time.perf_counter() - t:.0f} s", flush=True)
    for mode in MODES:
        cfg = cell_config(start, budget, seed, sources, mode)
        rd = RunDir(cell / f"plan-{mode}")
        failed = cell / f"plan-{mode}.failed.json"
        if failed.is_file():
            continue
        t = time.perf_counter()
        try:
            run_sub_run(rd, cfg, lambda resume, overwrite, cfg=cfg, rd=rd: plan(cfg, rd.path, overwrite=True,
                                                                                write_report=False))
        except UserError as err:  # the plan refused (exit 2): recorded, scored as no model (make_plan_results.py)
            failed.write_text(json.dumps({"error": str(err)}))
        print(f"{cell.relative_to(root)} plan-{mode}: {time.perf_counter() - t:.0f} s", flush=True)


def run(root: Path, seeds: list[int], shard: tuple[int, int] = (0, 1)) -> None:
    """Every cell in seed-major order; `shard` (i, n) runs every n-th cell from the i-th, so n processes share the
    suite and still finish whole seeds first."""
    sources = source_models(root)
    cells = [(start, budget, seed) for seed in seeds for start in STARTS for budget in BUDGETS]
    index, count = shard
    for start, budget, seed in cells[index::count]:
        run_cell(root, start, budget, seed, sources)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["run", "table"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--shard", default="0/1", help="I/N: this process runs every N-th cell from the I-th")
    args = parser.parse_args()
    if args.what == "run":
        index, count = (int(x) for x in args.shard.split("/"))
        run(args.root, [int(s) for s in args.seeds.split(",")], (index, count))
    else:
        from make_plan_results import tables  # docs/results/make_plan_results.py
        tables(args.root)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
