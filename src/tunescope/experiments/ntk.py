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

import numpy as np

from tunescope.config import check, save_config
from tunescope.diagnostics.ntk import DEFAULT_SKETCH_DIM, NTKResult, entk_decomposition, split_parameters
from tunescope.io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class NTKConfig:
    """What `tunescope ntk` computes."""

    model: str = "minilm-l6"
    """Model: a named asset, a local folder or a hub id."""
    data: str = "rotten_tomatoes"
    """Classification data: a named asset, a local file or a hub id."""
    text_column: str | None = None
    """Text column of a local or hub data set."""
    label_column: str | None = None
    """Label column of a local or hub data set."""
    strategy: str = "full"
    """Fine-tuning strategy whose starting point is analysed (full, lora, lp-ft, lp-lora, ...)."""
    samples: int = 250
    """Number of training examples n the kernels are computed on."""
    sketch_dim: int = DEFAULT_SKETCH_DIM
    """Count-sketch width m for the F matrix when the exact Gram does not fit (relative error ~ sqrt(2/m))."""
    max_length: int = 64
    """Maximum tokens per example."""
    limit: int | None = None
    """Cap on examples per split when loading the data."""
    seed: int = 0
    """Seed for the data split, the head initialisation, the sample choice and the sketch."""
    lora_rank: int = 8
    """LoRA rank (lora, lp-lora)."""
    lora_alpha: float = 16.0
    """LoRA alpha (lora, lp-lora)."""
    lora_dropout: float = 0.1
    """LoRA dropout (eval mode: inactive for the kernel)."""
    lora_targets: list[str] | None = None
    """LoRA target modules (default: the architecture's attention projections)."""
    layers: list[int] | None = None
    """Blocks with LoRA adapters (default: all)."""
    lp_cs: int = 10
    """Linear probe: number of L2 strengths tried."""
    lp_cv: int = 5
    """Linear probe: cross-validation folds."""
    eval_batch_size: int = 64
    """Batch size of the batched passes (features, LP, the summed gradient)."""

    def __post_init__(self):
        check(self.samples >= 2, "samples", self.samples, "an integer >= 2")
        check(self.sketch_dim >= 16, "sketch_dim", self.sketch_dim, "an integer >= 16")
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")
        check(self.limit is None or self.limit >= 1, "limit", self.limit, "a positive integer")
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
    from tunescope.data.tokenize import collator
    from tunescope.experiments.task import load_task
    from tunescope.strategies import STRATEGIES, StrategyContext

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    start = time.perf_counter()
    task = load_task(config)
    data, model, tokenizer, tokenized = task.data, task.model, task.tokenizer, task.tokenized
    collate = collator(tokenizer)
    results: dict = {"command": "ntk", "model": config.model, "data": config.data, "strategy": config.strategy,
                     "seed": config.seed}
    ctx = StrategyContext(config=config, tokenizer=tokenizer, data=data, tokenized=tokenized, collator=collate,
                          results=results, out_dir=run_dir)
    model = STRATEGIES.get(config.strategy).prepare(model, ctx)
    res = ntk_of_prepared(model, tokenized["train"], collate, samples=config.samples, seed=config.seed,
                          sketch_dim=config.sketch_dim, batch_size=config.eval_batch_size)
    if res is None:
        results["ntk"] = {"ft_ratio": 0.0, "n_samples": 0,
                          "note": f"strategy {config.strategy!r} trains only the head: F = 0"}
    else:
        results["ntk"] = res.summary()
        atomic_write(run_dir / "kernels.npz", lambda p: np.savez_compressed(
            open(p, "wb"), kernel_p=res.kernel_p, f=res.f, f_diag_exact=res.f_diag_exact, pd=res.pd, fd=res.fd))
    results["wall_seconds"] = round(time.perf_counter() - start, 2)
    atomic_write_json(run_dir / "results.json", results)
    from tunescope.report.html import build_report

    build_report(run_dir)
    return results
