"""`tunescope plan` and the planned main job (`tunescope run`).

plan:  load the task once -> measure the pre-trained model (planning/measure.py) -> candidates within the budget
       (planning/budget.py) -> decision rules (planning/rules.py) -> successive-halving trials of the candidates
       the rules leave (one round; --trial-candidates N: rounds of the N best-ranked) on the validation split (planning/trials.py) -> plan.json + results.json `plan` + report.
run:   plan (in RUN/plan) -> the winner's trial checkpoint becomes the start of the final run in RUN -> train it to
       the end of its schedule -> evaluate -> report, whose first lines say what was chosen and why.

plan_mode (ablations of docs/results/plan.md): `full` (rules reject and rank, trials decide), `rules` (the top-ranked
candidate, no trials), `trials` (every candidate within the budget goes to the trials, rules ignored).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import time
from pathlib import Path

from tunescope.experiments.finetune_config import FinetuneConfig
from tunescope.experiments.plan_config import PlanConfig  # re-exported
from tunescope.training.addons import AddonBase

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
PLAN_FOLDER = "plan"


def finetune_config(config: PlanConfig, **overrides) -> FinetuneConfig:
    """The FinetuneConfig part of `config`, with `overrides` (a candidate's strategy and settings)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(FinetuneConfig)}
    values.update(overrides)
    return FinetuneConfig(**values)


def candidate_pool(model, config: PlanConfig, band: list[int], budget: int | None) -> tuple[list, list[dict]]:
    """Every classification strategy as a Candidate with settings that fit `budget` (LoRA rank / SIFT rate
    lowered when needed), and the ones that cannot fit at all (as rejections)."""
    from tunescope.planning import budget as b
    from tunescope.planning.rules import BASE_PRIORITY, Candidate

    total = b.total_params(model)
    out, unfit = [], []

    def add(name: str, settings: dict, params: int | None, why_not: str = "") -> None:
        if params is None:
            unfit.append({"strategy": name, "rule": "parameter-budget", "reason": why_not})
        else:
            out.append(Candidate(name, settings, params, BASE_PRIORITY[name]))

    add("full", {}, total)
    add("lp-ft", {}, total)
    add("head", {}, b.head_params(model))
    for name, layers in (("lora", None), ("lp-lora", None), ("lora-inflection", band)):
        rank = b.largest_rank(model, budget, config.lora_rank, layers)
        add(name, {"lora_rank": rank, "layers": layers} if rank else {},
            b.lora_params(model, rank, layers) if rank else None, "even LoRA rank 1 is over the budget")
    rate = b.largest_sift_rate(model, budget, config.sift_rate)
    add("sift", {"sift_rate": rate}, b.sift_params(model, rate) if rate else None,
        "the dense head alone is over the budget")
    return out, unfit


def _steps_per_epoch(loaded, config) -> int:
    per_step = config.batch_size * max(getattr(config, "gradient_accumulation_steps", 1), 1)
    return max(1, math.ceil(len(loaded.tokenized["train"]) / per_step))


def _seconds_per_step(measurements: dict, config) -> float:
    """Estimate of a full fine-tuning step: the probe's forward + backward time per example (sparsity pass) times
    the batch size, x1.3 for the optimizer step. An upper bound for the parameter-efficient strategies."""
    m = measurements
    per_example = m["seconds"]["sparsity"] / max(m["layers"]["probe_batches"] * config.probe_batch_size, 1)
    return 1.3 * per_example * config.batch_size


def make_plan(config: PlanConfig, folder: Path) -> dict:
    """Measure, decide, try; returns the plan block (results.json `plan`, also written to FOLDER/plan.json)."""
    from tunescope.planning.budget import epochs_within, param_budget, total_params
    from tunescope.planning.measure import measure
    from tunescope.planning.rules import decide
    from tunescope.planning.trials import (
        NoSurvivorError,
        RandomState,
        TrialRunner,
        rung_steps,
        successive_halving,
    )
    from tunescope.strategies import STRATEGIES
    from tunescope.strategies.base import learning_rate_for
    from tunescope.tasks import TASKS

    started = time.perf_counter()
    task = TASKS.get("classification")
    loaded = task.load(finetune_config(config))
    random_state = RandomState()  # as finetune sees it before prepare(): trials start exactly like the final runs
    pristine = loaded.model
    measurements = measure(pristine, loaded, config)
    total = total_params(pristine)
    budget = param_budget(config.budget_params, total)
    measurements.update(total_params=total, budget_params=budget)
    candidates, unfit = candidate_pool(pristine, config, measurements["layers"]["inflection_layers"], budget)
    if config.candidates:
        candidates = [c for c in candidates if c.strategy in config.candidates]
        unfit = [u for u in unfit if u["strategy"] in config.candidates]
    forced = candidates[0] if config.candidates and len(config.candidates) == 1 and candidates else None
    pool = decide(measurements, candidates, use_rules=config.plan_mode != "trials")
    pool.rejected[:0] = unfit
    ranked = [forced] if forced is not None else pool.ranked()
    if not ranked:
        from tunescope.errors import UserError
        raise UserError(f"bad value {config.budget_params!r} for budget_params: no strategy fits it "
                        f"({'; '.join(r['strategy'] + ': ' + r['reason'] for r in pool.rejected)})")

    # Epochs: the config's, cut to fit the time budget (estimated step time; measurement already spent).
    per_epoch = _steps_per_epoch(loaded, config)
    step_seconds = _seconds_per_step(measurements, config)
    elapsed_min = (time.perf_counter() - started) / 60
    round_size = config.trial_candidates if config.plan_mode == "full" and config.trial_candidates else len(ranked)
    n_trials = 0 if config.plan_mode == "rules" or forced is not None else min(len(ranked), round_size)
    first = rung_steps(per_epoch, config.trial_steps)
    trial_waste_min = max(n_trials - 1, 0) * 2 * first * step_seconds / 60  # losers' steps, ~2 rungs each
    left = None if config.budget_minutes is None else config.budget_minutes - elapsed_min - trial_waste_min
    epochs = epochs_within(left, step_seconds, per_epoch, config.epochs)
    if epochs != config.epochs:
        pool.fire("time-budget", "user budget",
                  f"{config.budget_minutes:g} min budget, {left:.1f} min left for training after measurements and "
                  f"trials; estimated {step_seconds:.2f} s per step x {per_epoch} steps per epoch",
                  f"epochs cut from {config.epochs:g} to {epochs:g}")
    total_steps = config.max_steps if config.max_steps and config.max_steps > 0 else int(per_epoch * epochs)

    def config_for(candidate) -> FinetuneConfig:
        return finetune_config(config, **{**candidate.settings, "strategy": candidate.strategy, "epochs": epochs})

    for c in ranked:
        c.settings["learning_rate"] = learning_rate_for(STRATEGIES.get(c.strategy), config_for(c))
        c.settings["epochs"] = epochs
    trials, winner = [], None
    if forced is not None:
        chosen, because = forced, "the only candidate asked for (--candidates)"
    elif n_trials == 0:
        chosen, because = ranked[0], f"top-ranked by the rules (priority {ranked[0].priority:g})"
    else:
        # Waves of n_trials candidates in rank order: when nobody of a wave survives its trials, the next wave is
        # tried (the plan never keeps a collapsed or diverged candidate; none left anywhere: exit 2).
        runner = TrialRunner(loaded, pristine, Path(folder) / "trials", task, random_state)
        waiting = list(ranked)
        while winner is None:
            wave, waiting = waiting[:n_trials], waiting[n_trials:]
            wave_trials = [runner.start(c, config_for(c)) for c in wave]
            trials += wave_trials
            try:
                winner = successive_halving(runner, wave_trials, first, total_steps,
                                            progress=lambda t: log.info("trial %s: %s", t.candidate.strategy,
                                                                        t.rungs[-1] if t.rungs else t.reason))
            except NoSurvivorError:
                if not waiting:
                    raise
                log.warning("no candidate of %s survived its trial; trying %s",
                            ", ".join(c.strategy for c in wave), ", ".join(c.strategy for c in waiting[:n_trials]))
            finally:
                for t in wave_trials:
                    if t.status in ("collapsed", "diverged", "dropped"):
                        pool.rejected.append({"strategy": t.candidate.strategy, "rule": f"trial-{t.status}",
                                              "reason": t.reason})
                    if t is not winner:
                        t.trainer = None  # frees its model and optimizer state
        chosen, because = winner.candidate, winner.reason
        for c in waiting:
            pool.rejected.append({"strategy": c.strategy, "rule": "not-tried",
                                  "reason": f"ranked below the candidates that were tried (priority {c.priority:g})"})
    chosen_settings = dict(chosen.settings)
    block = {
        "mode": config.plan_mode, "strategy": chosen.strategy, "settings": chosen_settings,
        "trainable_params": chosen.trainable_params, "total_params": total,
        "because": because, "rules_fired": pool.fired, "rejected": pool.rejected,
        "candidates": [c.to_dict() for c in ranked], "trials": [t.to_dict() for t in trials],
        "measurements": measurements, "budget": {"params": budget, "params_text": config.budget_params,
                                                 "minutes": config.budget_minutes},
        "steps_per_epoch": per_epoch, "total_steps": total_steps, "first_rung_steps": first if trials else None,
        "estimated_seconds_per_step": round(step_seconds, 4),
        "trial_steps": sum(t.steps for t in trials), "seconds": round(time.perf_counter() - started, 2),
    }
    if winner is not None:
        from tunescope.training.checkpoints import latest_complete_checkpoint
        ckpt = latest_complete_checkpoint(winner.folder / "checkpoints")
        block["winner_checkpoint"] = str(ckpt.relative_to(Path(folder))) if ckpt else None
        block["winner_steps"] = winner.steps
    from tunescope.io import atomic_write_json, is_main_process
    if is_main_process():
        atomic_write_json(Path(folder) / PLAN_FILE, block)
    return block


def plan(config: PlanConfig, run_dir: str | Path, *, write_report: bool = True, overwrite: bool = False) -> dict:
    """`tunescope plan`: writes RUN/plan.json, RUN/trials/<strategy>/ (trial checkpoints), results.json with the
    `plan` block, and report.html. Returns the results."""
    from tunescope.experiments.recipe import run_recipe
    from tunescope.experiments.rundir import RunDir

    def body(rd: RunDir) -> dict:
        block = make_plan(config, rd.path)
        return {"model": config.model, "data": config.data, "seed": config.seed, "strategy": block["strategy"],
                "plan": block}

    return run_recipe("plan", config, RunDir(Path(run_dir)), body, write_report=write_report, overwrite=overwrite)


def chosen_config(config: PlanConfig, block: dict) -> FinetuneConfig:
    """The FinetuneConfig the plan chose: its strategy and settings over `config` (diagnostics on, as in run)."""
    return finetune_config(config, **{**block["settings"], "strategy": block["strategy"], "diagnose": True})


def run_planned(config: PlanConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> dict:
    """`tunescope run`: plan in RUN/plan (reused when finished with this config), then the chosen candidate's
    final run in RUN, started from its trial checkpoint (module docstring). Returns the final results."""
    from tunescope.experiments.finetune import finetune
    from tunescope.experiments.recipe import run_sub_run
    from tunescope.experiments.rundir import RunDir
    from tunescope.io import is_main_process

    rd = RunDir(Path(run_dir))
    rd.prepare(resume=resume, overwrite=overwrite)
    rd.path.mkdir(parents=True, exist_ok=True)
    plan_rd = RunDir(rd.path / PLAN_FOLDER)
    done = run_sub_run(plan_rd, config, lambda resume, overwrite: plan(config, plan_rd.path, overwrite=True))
    block = done["plan"]
    final = chosen_config(config, block)
    started_from = block.get("winner_checkpoint")
    if started_from and not rd.checkpoints.exists():
        # The winner's trial is the first part of its final run: continue it instead of training those steps again.
        source = plan_rd.path / started_from
        shutil.copytree(source, rd.checkpoints / source.name)
        metrics = source.parent.parent / "metrics.jsonl"
        if metrics.is_file():
            shutil.copyfile(metrics, rd.metrics_file)
    if is_main_process():
        rd.write_config(final)  # marks RUN as a run of this config: the finetune below continues it
    # resume=True: RUN was prepared above; the final run continues the newest checkpoint in RUN (the winner's trial
    # checkpoint, or an interrupted final run's) and starts from scratch when there is none.
    return finetune(final, rd.path, resume=True, extra_addons=[PlanResults(block)])


class PlanResults(AddonBase):
    """Puts the plan into the final run's results.json (`plan`) and counts its time in `wall_seconds`."""

    name = "plan-results"

    def __init__(self, block: dict):
        self.block = block

    def before_train(self, run) -> None:
        run.results["plan"] = self.block
        run.results["wall_seconds_before_resume"] = run.results.get("wall_seconds_before_resume", 0.0) + \
            self.block["seconds"]
