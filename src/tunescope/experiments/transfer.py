"""`tunescope transfer`: the seed-000 experiment (arXiv 2511.00797), source regime x target strategy.

1. Source task (default tweets_sentiment) fine-tuned fully, twice: UNDER (a fraction of an epoch) and OVER (many
   epochs, until the training loss is near zero - the saturated regime of the paper). Once per regime, seed
   `source_seed`.
2. Each source checkpoint is fine-tuned on the target task (default rotten_tomatoes) with every strategy
   (full / lora / lora-inflection) and every seed, with diagnostics on: the per-layer table of the source model
   before, Delta-CKA and the table after.
3. Summary: target test accuracy mean/std per (regime, strategy), trainable parameters, and whether the paper's
   finding holds: OVER gains from inflection LoRA, UNDER loses (here: acc(lora-inflection) - acc(lora) > 0 in OVER
   and < 0 in UNDER, also reported against full FT).
Hub pair of the paper: `--source stanfordnlp/sst2 --target cornell-movie-review-data/rotten_tomatoes
--model bert-base-uncased`.

Every run is a sub-run in OUT/source-<regime>/ or OUT/target-<regime>-<strategy>-s<seed>/. An interrupted
experiment continues with `--resume`: finished sub-runs made with the same config are reused, an interrupted one
is resumed from its last checkpoint (experiments.recipe.run_sub_run).
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tunescope.config import check
from tunescope.diagnostics.options import ProbeOptions
from tunescope.experiments.recipe import run_recipe, run_sub_run
from tunescope.experiments.rundir import RunDir
from tunescope.io import read_jsonl
from tunescope.tasks.options import ModelOptions

log = logging.getLogger(__name__)
REGIMES = ("under", "over")


@dataclass
class TransferConfig(ProbeOptions, ModelOptions):
    """The transfer experiment (defaults: the offline pair on minilm-l6, small enough for a shared CPU).

    `model` is the pre-trained model the source runs start from; the probe options drive the diagnostics.
    """

    source: str = "tweets_sentiment"
    """Source task data."""
    target: str = "rotten_tomatoes"
    """Target task data."""
    regimes: list[str] = field(default_factory=lambda: list(REGIMES))
    """Source regimes to run: under, over."""
    strategies: list[str] = field(default_factory=lambda: ["full", "lora", "lora-inflection"])
    """Target fine-tuning strategies."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of the target runs."""
    source_seed: int = 0
    """Seed of the source runs (one source model per regime)."""
    under_epochs: float = 0.25
    """Source epochs in the UNDER regime."""
    over_epochs: float = 8.0
    """Source epochs in the OVER regime (until the training loss is near zero)."""
    saturated_loss: float = 0.05
    """OVER counts as saturated when its last logged training loss is at most this (checked, reported, warned)."""
    source_limit: int | None = 1000
    """Cap on source examples per split."""
    target_limit: int | None = 1000
    """Cap on target examples per split."""
    target_epochs: float = 1.0
    """Target fine-tuning epochs."""
    batch_size: int = 32
    """Training batch size."""
    max_length: int = 64
    """Maximum tokens per example."""

    def validate(self) -> None:
        bad = [r for r in self.regimes if r not in REGIMES]
        check(not bad and bool(self.regimes), "regimes", bad[0] if bad else self.regimes, "some of under, over")
        check(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        check(self.under_epochs > 0 and self.over_epochs > 0, "under_epochs/over_epochs",
              (self.under_epochs, self.over_epochs), "positive numbers")
        check(self.target_epochs > 0, "target_epochs", self.target_epochs, "a positive number")
        from tunescope.strategies import STRATEGIES

        for s in self.strategies:
            STRATEGIES.get(s)


def _final_train_loss(run_dir: Path) -> float | None:
    """The last logged training loss (every logging_steps), else the Trainer's mean `train_loss`."""
    path = run_dir / "metrics.jsonl"
    records = read_jsonl(path) if path.is_file() else []
    for key in ("loss", "train_loss"):
        values = [m[key] for m in records if m.get(key) is not None]
        if values:
            return float(values[-1])
    return None


def run_source(config: TransferConfig, regime: str, run_dir: Path) -> tuple[Path, dict]:
    """The source model of one regime (a full fine-tune, reused or resumed as a sub-run) and its summary."""
    from tunescope.experiments.finetune import FinetuneConfig, finetune

    epochs = config.under_epochs if regime == "under" else config.over_epochs
    ft = FinetuneConfig(model=config.model, data=config.source, strategy="full", epochs=epochs,
                        batch_size=config.batch_size, max_length=config.max_length, limit=config.source_limit,
                        seed=config.source_seed, save_total_limit=1, warmup_ratio=0.0 if regime == "under"
                        else 0.06)
    results = run_sub_run(RunDir(run_dir), ft, partial(finetune, ft, run_dir, write_report=False))
    loss = _final_train_loss(run_dir)
    summary = {"regime": regime, "epochs": epochs, "train_loss_final": loss,
               "source_test_accuracy": results.get("eval", {}).get("accuracy")}
    if regime == "over":
        summary["saturated"] = loss is not None and loss <= config.saturated_loss
        if not summary["saturated"]:
            log.warning("the OVER source is not saturated: final training loss %s > %g; raise over_epochs (now %g) "
                        "or the source learning rate, or the comparison does not test the paper's regime",
                        loss, config.saturated_loss, epochs)
    return run_dir / "checkpoints" / "final", summary


def run_target(config: TransferConfig, source_ckpt: Path, strategy: str, seed: int, run_dir: Path) -> dict:
    """One target run (reused or resumed as a sub-run) from the source checkpoint; its row of the table."""
    from tunescope.experiments.finetune import FinetuneConfig, finetune

    ft = FinetuneConfig(model=str(source_ckpt), data=config.target, strategy=strategy,
                        epochs=config.target_epochs, batch_size=config.batch_size, max_length=config.max_length,
                        limit=config.target_limit, seed=seed, diagnose=True, probe_batches=config.probe_batches,
                        probe_batch_size=config.probe_batch_size, save_total_limit=1)
    results = run_sub_run(RunDir(run_dir), ft, partial(finetune, ft, run_dir, write_report=False))
    diag = results.get("diagnostics", {})
    return {"strategy": strategy, "seed": seed, "accuracy": results["eval"]["accuracy"],
            "trainable_params": results.get("trainable_params"), "total_params": results.get("total_params"),
            "adapted_layers": results.get("adapted_layers"), "inflection_layers": diag.get("inflection_layers"),
            "diagnostics_before": diag.get("layers"),
            "diagnostics_after": (results.get("diagnostics_after") or {}).get("layers"),
            "wall_seconds": results.get("wall_seconds")}


def summarise(rows: list[dict]) -> dict:
    """Per regime and strategy: accuracy mean, std (n-1), n, trainable params; and the paper's finding."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["regime"], {}).setdefault(r["strategy"], []).append(r)
    summary = {}
    for regime, by_strategy in out.items():
        summary[regime] = {}
        for strategy, runs in by_strategy.items():
            accs = [x["accuracy"] for x in runs]
            summary[regime][strategy] = {"accuracy_mean": statistics.fmean(accs),
                                         "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                                         "n": len(accs), "trainable_params": runs[0]["trainable_params"]}
    return summary


def finding(summary: dict) -> dict:
    """Gains of lora-inflection over lora and over full per regime; does the paper's pattern hold?"""
    gains = {}
    for regime, s in summary.items():
        if "lora-inflection" in s:
            gains[regime] = {f"vs_{b}": s["lora-inflection"]["accuracy_mean"] - s[b]["accuracy_mean"]
                             for b in ("lora", "full") if b in s}
    holds = None
    if "over" in gains and "under" in gains and "vs_lora" in gains["over"] and "vs_lora" in gains["under"]:
        holds = gains["over"]["vs_lora"] > 0 > gains["under"]["vs_lora"]
    return {"gains": gains, "reproduces": holds,
            "criterion": "acc(lora-inflection) - acc(lora) > 0 after OVER and < 0 after UNDER"}


def transfer(config: TransferConfig, run_dir: str | Path, *, write_report: bool = True, resume: bool = False,
             overwrite: bool = False) -> dict:
    """Run the whole grid; writes run_dir/results.json with `transfer.*` and returns it.

    `resume`: continue an interrupted experiment in `run_dir` (finished sub-runs reused, an interrupted one
    resumed); `overwrite`: clear a non-empty `run_dir` first.
    """
    return run_recipe("transfer", config, run_dir, partial(_grid, config), write_report=write_report, resume=resume,
                      overwrite=overwrite)


def _grid(config: TransferConfig, rd: RunDir) -> dict:
    """The body of the recipe: every source regime, then every (strategy, seed) on it; the summary."""
    run_dir = rd.path
    sources, rows = {}, []
    for regime in config.regimes:
        ckpt, sources[regime] = run_source(config, regime, run_dir / f"source-{regime}")
        log.info("source %s: final training loss %s", regime, sources[regime]["train_loss_final"])
        for seed in config.seeds:
            for strategy in config.strategies:
                row = run_target(config, ckpt, strategy, seed, run_dir / f"target-{regime}-{strategy}-s{seed}")
                rows.append({"regime": regime, **row})
                log.info("%s / %s / seed %d: accuracy %.4f", regime, strategy, seed, row["accuracy"])
    summary = summarise(rows)
    return {"command": "transfer", "model": config.model, "data": f"{config.source} -> {config.target}",
            "transfer": {"sources": sources, "runs": rows, "summary": summary, "finding": finding(summary)}}

