"""`tunescope sparsity`: gradient quasi-sparsity of a pre-trained model on a data set (SIFT, METHODS.md s.2).

The classifier is loaded as for fine-tuning (a fresh head for the task), the gradient of the training
loss is summed over `batches` seeded batches of the training split, and diagnostics/sparsity.py reports,
per tensor and overall, the share of the squared gradient norm in the top 0.1 / 1 / 5 / 10 % of entries,
for all 2-D block weights and for SIFT's default targets (attention q, k, v, o) separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunescope.config import check
from tunescope.diagnostics.options import DEFAULT_FRACTIONS
from tunescope.experiments.preflight import preflight
from tunescope.experiments.recipe import run_recipe
from tunescope.tasks.options import TaskOptions


@dataclass
class SparsityConfig(TaskOptions):
    """What `tunescope sparsity` measures."""

    batches: int = 1
    """Batches whose summed gradient is measured (SIFT selects its mask from 1)."""
    batch_size: int = 32
    """Examples per batch."""
    fractions: list[float] = field(default_factory=lambda: list(DEFAULT_FRACTIONS))
    """Top fractions p of entries whose share of the squared gradient norm is reported."""
    targets: list[str] | None = None
    """Module-name patterns to measure (default: every 2-D weight of the transformer blocks)."""

    def validate(self) -> None:
        check(self.batches >= 1, "batches", self.batches, "a positive integer")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")
        check(bool(self.fractions) and all(0 < p <= 1 for p in self.fractions), "fractions", self.fractions,
              "numbers in (0, 1]")


def run_sparsity(config: SparsityConfig, run_dir: str | Path) -> dict:
    """Measure, write results.json (key `sparsity`) and report.html; returns the results dict."""
    from tunescope.data.tokenize import probe_batches
    from tunescope.diagnostics.sparsity import (
        accumulate_gradients,
        block_weight_names,
        sparsity_from_grads,
    )
    from tunescope.strategies.sift.config import resolve_targets
    from tunescope.tasks import load_task

    def body(_rd) -> dict:
        task = load_task(config)
        model, tokenizer, tokenized = task.model, task.tokenizer, task.tokenized
        batches = probe_batches(tokenized["train"], tokenizer, batch_size=config.batch_size,
                                num_batches=config.batches, seed=config.seed)
        names = list(resolve_targets(model, config.targets)) if config.targets else block_weight_names(model)
        attention = list(resolve_targets(model, None))  # SIFT's default targets
        grads = accumulate_gradients(model, batches, sorted(set(names) | set(attention)))
        measured = sparsity_from_grads({n: grads[n] for n in names if n in grads}, config.fractions, len(batches))
        attn = sparsity_from_grads({n: grads[n] for n in attention if n in grads}, config.fractions, len(batches))
        result = measured.to_dict()
        result["attention_qkvo"] = {k: v for k, v in attn.to_dict().items() if k != "per_tensor"}
        result["examples"] = sum(len(b["labels"]) for b in batches)
        return {"model": config.model, "data": config.data, "seed": config.seed, "sparsity": result}

    preflight(config, module_patterns={"targets": config.targets})  # before the data and weights load
    return run_recipe("sparsity", config, run_dir, body)
