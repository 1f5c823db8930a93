"""The basins experiment (METHODS.md section 4, arXiv 2505.17646) at CPU scale.

    OMP_NUM_THREADS=1 .venv/bin/python -m tunescope.experiments.basins out=runs/basins [key=value ...]
        [--resume | --overwrite]

A non-empty `out` is refused unless `--resume` (continue: finished sub-runs made with the same settings are
reused, an interrupted fine-tune is resumed from its last checkpoint) or `--overwrite` (clear it first).

For each strategy (full, lora, sift if registered) and GO noise sigma (0 = plain training):
1. fine-tune `model` on `data` (FinetuneConfig; GO via noise_sigma), a sub-run OUT/<strategy>-go<sigma>/;
2. `tunescope landscape` on the run directory: random (m), worst-case and sft directions, scope all
   (LoRA merged into its base), 1-D curves;
3. pre-trained capability: a linear probe (standardised L2 logistic regression, sklearn) on a second task
   (`probe_data`) fitted on frozen mean-pooled final-layer features, for the pre-trained model and for
   every fine-tuned one (same probe examples). Retention = probe accuracy of the fine-tuned encoder /
   that of the pre-trained encoder.
Writes OUT/basins.json (one row per run + the pre-trained probe) and OUT/basins_*.png
(report/basins_figures.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from tunescope.config import Options, build_config, check, parse_overrides
from tunescope.experiments.recipe import run_sub_run
from tunescope.experiments.rundir import RunDir, run_lock
from tunescope.io import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class BasinsConfig(Options):
    """Settings of the basins experiment (defaults = the run in docs/results/basins.md)."""

    out: str = "runs/basins"
    """Output folder: one run directory per (strategy, sigma), basins.json, plots."""
    model: str = "minilm-l6"
    """Pre-trained model."""
    data: str = "rotten_tomatoes"
    """Fine-tuning task (the basin score is its test accuracy)."""
    probe_data: str = "tweets_sentiment"
    """Second task for the pre-trained-capability linear probe."""
    strategies: list[str] = field(default_factory=lambda: ["full", "lora", "sift"])
    """Fine-tuning strategies (unregistered ones are skipped with a warning)."""
    sigmas: list[float] = field(default_factory=lambda: [0.0, 0.01])
    """GO noise sigmas (0 = plain training)."""
    go_strategies: list[str] = field(default_factory=lambda: ["full", "lora"])
    """Strategies also trained with the non-zero sigmas."""
    epochs: float = 3.0
    """Fine-tuning epochs."""
    limit: int = 800
    """Examples per split (train / validation / test)."""
    max_length: int = 32
    """Tokens per example."""
    batch_size: int = 16
    """Training batch size."""
    learning_rate_scale: float = 2.0
    """Learning rate = this x the strategy's default (full 5e-5, lora 5e-4, sift 1e-3): few steps on a CPU."""
    sift_rate: float = 0.031
    """SIFT's share of the q/k/v/o entries: 0.031 = LoRA r8's trainable-parameter budget (docs/results/sift.md)."""
    sift_learning_rate: float = 3e-3
    """SIFT's learning rate (not scaled): at 2e-3 and rate 0.01 SIFT stayed a majority-class predictor here."""
    num_directions: int = 3
    """Random directions per model."""
    worst_steps: int = 3
    """Projected-ascent steps of the worst-case direction."""
    worst_batches: int = 1
    """Evaluation batches in the ascent's loss."""
    eval_examples: int = 64
    """Test examples in the basin score."""
    curve_points: int = 7
    """Points per 1-D curve."""
    probe_limit: int = 300
    """Probe examples per split (train for fitting, test for accuracy)."""
    seed: int = 0
    """Seed of data splits, training and directions."""

    def validate(self) -> None:
        check(all(s >= 0 for s in self.sigmas), "sigmas", self.sigmas, "numbers >= 0")
        check(self.num_directions >= 1, "num_directions", self.num_directions, "a positive integer")
        check(0 < self.sift_rate <= 1, "sift_rate", self.sift_rate, "a share in (0, 1]")
        check(self.sift_learning_rate > 0, "sift_learning_rate", self.sift_learning_rate, "a number > 0")


@torch.no_grad()
def mean_pooled_features(model, batches: list[dict]) -> np.ndarray:
    """phi(x) = mean over valid tokens of the final-layer hidden state: [N, hidden]."""
    out = []
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        h = model(**inputs, output_hidden_states=True).hidden_states[-1]
        m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
        out.append(((h * m).sum(1) / m.sum(1).clamp_min(1)).float().numpy())
    return np.concatenate(out)


def probe_accuracy(model, train: list[dict], test: list[dict]) -> float:
    """Test accuracy of an L2 logistic regression (C = 1, standardised features) fitted on frozen features."""
    from tunescope.strategies.linear_probe import standardized_probe_accuracy

    model.eval()
    xtr, xte = mean_pooled_features(model, train), mean_pooled_features(model, test)
    ytr = np.concatenate([b["labels"].numpy() for b in train])
    yte = np.concatenate([b["labels"].numpy() for b in test])
    return standardized_probe_accuracy(xtr, ytr, xte, yte, max_iter=3000)


def _probe_batches(config: BasinsConfig, tokenizer):
    from tunescope.data import load_classification
    from tunescope.data.tokenize import collator, tokenize_classification
    from tunescope.landscape.scores import collate_batches

    data = load_classification(config.probe_data, seed=config.seed, limit=config.probe_limit)
    tok = tokenize_classification(data, tokenizer, config.max_length)
    collate = collator(tokenizer)
    return collate_batches(tok["train"], collate, 64), collate_batches(tok["test"], collate, 64)


def _finetune(config: BasinsConfig, strategy: str, sigma: float, run_dir: Path) -> dict:
    """The fine-tuning sub-run of (strategy, sigma): reused when finished with these settings, else (re)run."""
    from tunescope.experiments.finetune import FinetuneConfig, finetune
    from tunescope.strategies import STRATEGIES

    lr = config.learning_rate_scale * STRATEGIES.get(strategy).default_learning_rate
    if strategy == "sift":
        lr = config.sift_learning_rate
    ft = FinetuneConfig(model=config.model, data=config.data, strategy=strategy, epochs=config.epochs,
                        learning_rate=lr, sift_rate=config.sift_rate,
                        limit=config.limit, max_length=config.max_length, batch_size=config.batch_size,
                        seed=config.seed, noise_sigma=sigma, feature_change=False)
    return run_sub_run(RunDir(run_dir), ft, partial(finetune, ft, run_dir, write_report=False))


def _landscape(config: BasinsConfig, run_dir: Path) -> dict:
    """The landscape sub-run RUN/landscape of a fine-tuned run: reused when finished with these settings."""
    from tunescope.experiments.landscape import LandscapeConfig, run_landscape

    out = RunDir(run_dir / "landscape")
    lc = LandscapeConfig(model=str(run_dir), directions=["random", "worst", "sft"],
                         num_directions=config.num_directions, worst_steps=config.worst_steps,
                         worst_batches=config.worst_batches, eval_examples=config.eval_examples,
                         eval_batch_size=48, max_length=config.max_length, limit=config.limit,
                         curve_points=config.curve_points, seed=config.seed)

    def measure(resume: bool, overwrite: bool) -> dict:
        out.clear()  # a landscape has no checkpoints: an interrupted one starts over
        return run_landscape(lc, out.path, write_report=True)

    return run_sub_run(out, lc, measure)


def run_basins(config: BasinsConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Fine-tune, measure basins and probe capability for every (strategy, sigma); returns basins.json.

    OUT (config.out) is locked for the run; a non-empty OUT is refused unless `resume` (finished sub-runs with the
    same settings reused, an interrupted one resumed) or `overwrite` (cleared first).
    """
    rd = RunDir(Path(config.out))
    with run_lock(rd):
        rd.prepare(resume=resume, overwrite=overwrite)
        rd.path.mkdir(parents=True, exist_ok=True)
        (rd.path / "basins.json").unlink(missing_ok=True)  # an earlier attempt's results never describe this config
        rd.write_config(config)
        return _run_basins(config, rd.path)


def _run_basins(config: BasinsConfig, out: Path) -> dict:
    """The experiment itself, in the locked and prepared folder `out`."""
    from tunescope.experiments.diagnose import resolve_checkpoint
    from tunescope.models.load import load_classifier
    from tunescope.report.basins_figures import plot_basins
    from tunescope.strategies import STRATEGIES

    torch.set_num_threads(1)  # the shared CPU: one thread per process is the fastest per-core choice here
    start = time.perf_counter()
    pre, tokenizer = load_classifier(config.model, 2)
    probe_train, probe_test = _probe_batches(config, tokenizer)
    pre_probe = probe_accuracy(pre, probe_train, probe_test)
    log.info("pre-trained probe accuracy on %s: %.4f", config.probe_data, pre_probe)
    rows = []
    for strategy in config.strategies:
        if strategy not in STRATEGIES.names():
            log.warning("strategy %s is not registered here: skipped", strategy)
            continue
        for sigma in config.sigmas:
            if sigma > 0 and strategy not in config.go_strategies:
                continue
            name = f"{strategy}-go{sigma:g}"
            run_dir = out / name
            ft = _finetune(config, strategy, sigma, run_dir)
            ls = _landscape(config, run_dir)
            model, _ = load_classifier(resolve_checkpoint(str(run_dir)), 2)
            if hasattr(model, "merge_and_unload"):
                model = model.merge_and_unload()
            acc = probe_accuracy(model, probe_train, probe_test)
            b = ls["basin"]
            rows.append({
                "run": name, "strategy": strategy, "noise_sigma": sigma,
                "test_accuracy": ft["eval"]["accuracy"], "basin_score": b["score"],
                "random_median_radius": b["random"]["median_radius"], "random_radii": b["random"]["radii"],
                "worst_radius": b["worst"]["median_radius"], "sft_radius": b["sft"]["median_radius"],
                "sft_radius_towards_base": b["sft"]["radii_negative"][0], "base_distance": -b["sft"]["base_scale"],
                "evals_per_direction": b["random"]["evaluations_per_direction"],
                "probe_accuracy": acc, "probe_retention": acc / pre_probe,
                "train_seconds": ft.get("wall_seconds"), "landscape_seconds": ls.get("wall_seconds"),
            })
            log.info("%s: %s", name, rows[-1])
            del model
    result = {"config": vars(config), "pretrained_probe_accuracy": pre_probe, "rows": rows,
              "wall_seconds": round(time.perf_counter() - start, 1)}
    atomic_write_json(out / "basins.json", result)
    plot_basins(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m tunescope.experiments.basins")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="BasinsConfig values, e.g. out=runs/b")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true", help="continue the experiment in `out`")
    how.add_argument("--overwrite", action="store_true", help="clear a non-empty `out` first")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    config = build_config(BasinsConfig, parse_overrides(args.overrides))
    result = run_basins(config, resume=args.resume, overwrite=args.overwrite)
    print(f"pre-trained probe accuracy ({config.probe_data}): {result['pretrained_probe_accuracy']:.4f}")
    for r in result["rows"]:
        print(f"{r['run']:>14}: acc {r['test_accuracy']:.3f}  random r {r['random_median_radius']:.4g}  "
              f"worst r {r['worst_radius']:.4g}  sft r {r['sft_radius']:.4g}  base at {r['base_distance']:.4g}  "
              f"probe {r['probe_accuracy']:.3f} ({r['probe_retention']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
