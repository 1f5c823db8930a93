"""`tunescope sparsity`: gradient quasi-sparsity of a pre-trained model on a data set (SIFT, METHODS.md s.2).

The model is loaded as its task fine-tunes it (`--task`, chosen from the data as in `tunescope diagnose`):
classification, a classifier with a fresh head and its cross-entropy; causal-lm, a decoder on SFT data and the SFT
loss (mean NLL over the completion tokens; trl's collator sets labels -100 everywhere else). The gradient of that
loss is summed over `batches` seeded batches of the training split, and diagnostics/sparsity.py reports the share
of the squared gradient norm in the top 0.1 / 1 / 5 / 10 % of entries per tensor, per tensor kind (q_proj,
gate_proj, ... pooled over the blocks) and overall, for all 2-D block weights and for SIFT's default targets
(attention q, k, v, o) separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunescope.config import check
from tunescope.diagnostics.options import DEFAULT_FRACTIONS
from tunescope.errors import UserError
from tunescope.experiments.diagnose import DIAGNOSE_TASKS, task_of
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
    task: str | None = None
    """classification, or causal-lm: a decoder on SFT data with the SFT loss (labels -100 outside the completion
    tokens). Default: causal-lm for SFT data (quartz, or a file with messages or prompt + completion columns)."""
    chat_template: str | None = None
    """causal-lm: a Jinja chat-template file to render conversations with instead of the tokenizer's."""

    def validate(self) -> None:
        check(self.batches >= 1, "batches", self.batches, "a positive integer")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")
        check(bool(self.fractions) and all(0 < p <= 1 for p in self.fractions), "fractions", self.fractions,
              "numbers in (0, 1]")
        check(self.task is None or self.task in DIAGNOSE_TASKS, "task", self.task, ", ".join(DIAGNOSE_TASKS))
        check(self.chat_template is None or Path(self.chat_template).expanduser().is_file(), "chat_template",
              self.chat_template, "an existing Jinja template file")


def run_sparsity(config: SparsityConfig, run_dir: str | Path) -> dict:
    """Measure, write results.json (key `sparsity`) and report.html; returns the results dict."""
    from tunescope.data.tokenize import probe_batches
    from tunescope.diagnostics.sparsity import (
        accumulate_gradients,
        block_weight_names,
        sparsity_from_grads,
        sparsity_per_kind,
        tensor_kinds,
    )
    from tunescope.models.layers import model_layout
    from tunescope.strategies.sift.config import resolve_targets
    from tunescope.tasks import load_task

    task_name = task_of(config)  # the same choice as `tunescope diagnose`
    if config.chat_template and task_name != "causal-lm":
        raise UserError(f"bad value {config.chat_template!r} for chat_template: it renders SFT conversations, and "
                        f"this run measures the {task_name} task; give --task causal-lm with SFT data, or drop it")

    def body(_rd) -> dict:
        task = load_task(config, task=task_name)
        model, tokenizer, tokenized = task.model, task.tokenizer, task.tokenized
        # The task's own collator: for causal-lm it keeps labels -100 outside the completion, so model(**b).loss
        # (what accumulate_gradients differentiates) is the masked SFT loss.
        batches = probe_batches(tokenized["train"], tokenizer, batch_size=config.batch_size,
                                num_batches=config.batches, seed=config.seed, collate=task.collator)
        names = list(resolve_targets(model, config.targets)) if config.targets else block_weight_names(model)
        attention = list(resolve_targets(model, None))  # SIFT's default targets
        grads = accumulate_gradients(model, batches, sorted(set(names) | set(attention)))
        chosen = {n: grads[n] for n in names if n in grads}
        measured = sparsity_from_grads(chosen, config.fractions, len(batches))
        attn = sparsity_from_grads({n: grads[n] for n in attention if n in grads}, config.fractions, len(batches))
        result = measured.to_dict()
        kinds = tensor_kinds(chosen, model_layout(model).block_prefixes)
        result["per_kind"] = sparsity_per_kind(chosen, kinds, config.fractions)
        result["attention_qkvo"] = {k: v for k, v in attn.to_dict().items() if k != "per_tensor"}
        result["examples"] = sum(len(b["input_ids"]) for b in batches)  # sequences (labels are 2-D for causal-lm)
        if task_name == "causal-lm":  # how many tokens the SFT loss is taken over
            result["loss_tokens"] = sum(int((b["labels"] != -100).sum()) for b in batches)
        return {"model": config.model, "data": config.data, "seed": config.seed, "task": task_name,
                "sparsity": result}

    preflight(config, task=task_name, module_patterns={"targets": config.targets})  # before the data and weights load
    return run_recipe("sparsity", config, run_dir, body)
