"""trl's SFTTrainer with tunescope's strategy hooks, and its arguments from a tunescope config.

`StrategySFTTrainer(StrategyTrainer, SFTTrainer)`: cooperative multiple inheritance, nothing re-implemented.
StrategyTrainer (training/trainer.py) contributes the strategy save / load (SIFT's sparse delta), the atomic
checkpoints and the per-step divergence guard; SFTTrainer contributes trl's loss on the prepared labels (its fused
LM head: no [batch, length, vocab] logits), packing and its token metrics (mean_token_accuracy, entropy,
num_tokens in the logs).

The data sets arrive tokenised with their labels (data/sft_prepare.py ran trl's own preparation with
assistant_only_loss / completion_only_loss), so SFTTrainer keeps those labels as they are and its two switches stay
off here; it only packs them when asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn
from trl import SFTConfig as TrlSFTConfig
from trl import SFTTrainer

from tunescope.models.layers import unwrap
from tunescope.training.trainer import DivergenceGuard, MetricsLogCallback, StrategyTrainer, training_arguments


class StrategySFTTrainer(StrategyTrainer, SFTTrainer):
    """SFTTrainer whose strategy decides how weights are saved and restored (see the module docstring)."""


@contextmanager
def no_kv_cache(model: nn.Module) -> Iterator[None]:
    """model.config.use_cache off for the block (training never reads a KV cache). It matters beyond speed: the
    documents of a packed row are kept apart only by their position ids, which transformers reads as packing only
    when no cache is made, and SIFT's mask selection calls the model outside trl's loss (which turns the cache off
    itself)."""
    config = unwrap(model).config
    before = config.use_cache
    config.use_cache = False
    try:
        yield
    finally:
        config.use_cache = before


def sft_arguments(config, output_dir: Path, learning_rate: float, has_eval: bool = True) -> TrlSFTConfig:
    """trl's SFTConfig holding tunescope's TrainingArguments (training.trainer.training_arguments) plus
    max_length and packing. Evaluation during training reports the loss only (no logits are gathered)."""
    base = training_arguments(config, output_dir, learning_rate, has_eval)
    values = base.to_dict()
    values["hub_token"] = base.hub_token  # to_dict hides it (trl converts TrainingArguments the same way)
    values.update(max_length=config.max_length, packing=bool(getattr(config, "packing", False)),
                  assistant_only_loss=False, completion_only_loss=None, prediction_loss_only=True)
    return TrlSFTConfig(**values)


def build_sft_trainer(model, tokenizer, tokenized: dict, collator, config, run_dir: Path, *, learning_rate: float,
                      strategy=None, optimizer=None, callbacks: list | None = None) -> StrategySFTTrainer:
    """A StrategySFTTrainer over tokenized["train"], evaluating the loss on tokenized["validation"] each epoch.

    With packing, trl's padding-free collator replaces `collator` (trl refuses another one there).
    """
    from tunescope.data.sft_prepare import quiet_maps

    args = sft_arguments(config, run_dir / "checkpoints", learning_rate, has_eval="validation" in tokenized)
    columns = ["input_ids", "labels"]
    with quiet_maps():  # trl maps the prepared rows once more (truncation to max_length: nothing left to cut)
        return StrategySFTTrainer(
            model=model,
            args=args,
            train_dataset=tokenized["train"].select_columns(columns),
            eval_dataset=tokenized["validation"].select_columns(columns) if "validation" in tokenized else None,
            data_collator=None if args.packing else collator,
            processing_class=tokenizer,
            optimizers=(optimizer, None),
            callbacks=[MetricsLogCallback(run_dir / "metrics.jsonl"), *(callbacks or [])],
            strategy=strategy,
            divergence_guard=DivergenceGuard(learning_rate, record_to=run_dir / "metrics.jsonl"),
        )
