"""`tunescope ntk`: the eNTK split P + F and the FT ratio at the start of fine-tuning.

The model is prepared exactly as `tunescope finetune --strategy S` would prepare it (for lp-ft / lp-lora the
LP head is fitted and installed first; for lora the adapters are added), then diagnostics/ntk.py computes the
kernels on n training examples. Also used by the fine-tuning hook when `ntk_samples > 0`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunescope.config import check
from tunescope.diagnostics.options import DEFAULT_SKETCH_DIM, ProbeOptions
from tunescope.experiments.preflight import preflight
from tunescope.experiments.recipe import run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.io import atomic_write
from tunescope.strategies.options import LinearProbeOptions, LoraOptions
from tunescope.strategies.sift.config import SiftOptions
from tunescope.tasks.options import TaskOptions

if TYPE_CHECKING:
    from tunescope.diagnostics.ntk import NTKResult

# Module level stays light (numpy and the eNTK code are imported where they are used): the CLI builds
# `tunescope ntk --help` from NTKConfig.

log = logging.getLogger(__name__)


@dataclass
class NTKConfig(SiftOptions, LinearProbeOptions, ProbeOptions, LoraOptions, TaskOptions):
    """What `tunescope ntk` computes: the kernels at the start of fine-tuning with `strategy`.

    Holds every strategy's option group, so the model is prepared exactly as `tunescope finetune` would.
    """

    strategy: str = "full"
    """Fine-tuning strategy whose starting point is analysed (full, lora, lp-ft, lp-lora, ...)."""
    samples: int = 250
    """Number of training examples n the kernels are computed on."""
    sketch_dim: int = DEFAULT_SKETCH_DIM
    """Count-sketch width m for the F matrix when the exact Gram does not fit (relative error ~ sqrt(2/m))."""
    eval_batch_size: int = 64
    """Batch size of the batched passes (features, LP, the summed gradient)."""

    def validate(self) -> None:
        check(self.samples >= 2, "samples", self.samples, "an integer >= 2")
        check(self.sketch_dim >= 16, "sketch_dim", self.sketch_dim, "an integer >= 16")
        check(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "a positive integer")
        from tunescope.strategies import STRATEGIES

        STRATEGIES.get(self.strategy)


def ntk_subset(tokenized_train, n: int, seed: int):
    """n training examples chosen by `seed` (all of them when the split is smaller)."""
    n = min(n, len(tokenized_train))
    return tokenized_train.shuffle(seed=seed).select(range(n))


def ntk_of_prepared(model, tokenized_train, collator, *, samples: int, seed: int,
                    sketch_dim: int = DEFAULT_SKETCH_DIM, batch_size: int = 32, matrix: bool = True) -> NTKResult | None:
    """eNTK of an already prepared model (None when nothing outside the head trains, e.g. `head`);
    `matrix=False`: FT ratio only, without the F matrix."""
    from tunescope.diagnostics.ntk import entk_decomposition, split_parameters

    backbone, _ = split_parameters(model)
    if not backbone:
        return None
    subset = ntk_subset(tokenized_train, samples, seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    step = max(1, len(subset) // 10)

    def progress(i: int, n: int) -> None:
        if i % step == 0 or i == n:
            log.info("eNTK: %d / %d samples (%.0f s wall, %.0f s CPU)", i, n, time.perf_counter() - t0,
                     time.process_time() - cpu0)

    res = entk_decomposition(model, subset, collator, batch_size=batch_size, sketch_dim=sketch_dim, seed=seed,
                             progress=progress, matrix=matrix)
    res.stats["seconds"] = round(time.perf_counter() - t0, 2)
    # CPU seconds of all threads: on a shared machine wall time says more about the neighbours than about us.
    res.stats["cpu_seconds"] = round(time.process_time() - cpu0, 2)
    return res


def run_ntk(config: NTKConfig, run_dir: str | Path) -> dict:
    """Prepare the model as `config.strategy` would, compute the eNTK split, write results.json + kernels.npz."""
    import numpy as np

    from tunescope.strategies import STRATEGIES, StrategyContext
    from tunescope.strategies.base import check_options, learning_rate_for
    from tunescope.tasks import load_task

    strategy = STRATEGIES.get(config.strategy)
    check_options(strategy, config, "ntk")
    preflight(config)  # the strategy's LoRA / SIFT options against the model's structure, before loading

    def body(rd: RunDir) -> dict:
        task = load_task(config)
        results: dict = {"model": config.model, "data": config.data, "strategy": config.strategy,
                         "seed": config.seed}
        ctx = StrategyContext(config=config, tokenizer=task.tokenizer, data=task.data, tokenized=task.tokenized,
                              collator=task.collator, results=results, out_dir=rd.path,
                              learning_rate=learning_rate_for(strategy, config))
        model = strategy.prepare(task.model, ctx)
        res = ntk_of_prepared(model, task.tokenized["train"], task.collator, samples=config.samples, seed=config.seed,
                              sketch_dim=config.sketch_dim, batch_size=config.eval_batch_size)
        if res is None:
            results["ntk"] = {"ft_ratio": 0.0, "n_samples": 0,
                              "note": f"strategy {config.strategy!r} trains only the head: F = 0"}
        else:
            results["ntk"] = res.summary()
            atomic_write(rd.path / "kernels.npz", lambda p: np.savez_compressed(
                open(p, "wb"), kernel_p=res.kernel_p, f=res.f, f_diag_exact=res.f_diag_exact, pd=res.pd, fd=res.fd))
        return results

    return run_recipe("ntk", config, run_dir, body)
