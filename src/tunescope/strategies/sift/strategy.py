"""`sift`: sparse increment fine-tuning (Song et al., ICML 2024) as a tunescope Strategy.

prepare:          target weights (attention q,k,v,o by default) get a SiftEngine; the head trains densely;
                  everything else is frozen.
create_optimizer: SiftAdamW over the k increments and the head (fp32 state for the selected entries only).
callbacks:        on_train_begin chooses the mask from the first `sift_selection_batches` batches of the
                  Trainer's own (per-process) train loader, all-reduced across processes; gradient
                  clipping moves from the Trainer into the optimizer (which sees the sparse gradients);
                  on_train_end records the facts in results["sift"].
save / load:      the sparse delta (safetensors indices + values, JSON config), see state.py. Saving the run's
                  final model (checkpoints/final) also writes checkpoints/final-peft, the same delta as a
                  peft SHiRA adapter that plain `PeftModel.from_pretrained` loads (export.py).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import TrainerCallback

from tunescope.errors import UserError
from tunescope.io import is_main_process
from tunescope.models.layers import head_parameter_names
from tunescope.strategies.base import (
    STRATEGIES,
    StrategyBase,
    StrategyContext,
    learning_rate_for,
)
from tunescope.strategies.sift.accounting import state_bytes
from tunescope.strategies.sift.config import SiftOptions
from tunescope.strategies.sift.export import export_after_training
from tunescope.strategies.sift.optimizer import SiftAdamW
from tunescope.strategies.sift.sparse import SiftEngine
from tunescope.strategies.sift.state import load_delta, restore_engine, save_delta

log = logging.getLogger(__name__)
ENGINE_ATTR = "_tunescope_sift_engine"
FINAL_FOLDER = "final"  # RunDir.final's name (checkpoints/final); strategies do not import the recipes' RunDir


def engine_of(model: nn.Module) -> SiftEngine:
    engine = getattr(model, ENGINE_ATTR, None)
    if engine is None:
        raise UserError("this model was not prepared by the sift strategy")
    return engine


def sift_facts(engine: SiftEngine, optimizer=None) -> dict:
    """results["sift"]: rate, selected_params, optimizer_state_bytes (moments + packed indices + base copy, counted
    as accounting.state_bytes does), ..."""
    facts = {"rate": engine.config.rate, "mask": engine.config.mask,
             "selection_batches": engine.config.selection_batches, "targets": len(engine.slots),
             "selected_params": engine.selected_params, "dense_params": engine.dense_params(),
             "target_params": sum(s.weight.numel() for s in engine.slots.values()),
             "grad_topk_share": engine.grad_topk_share}
    if optimizer is not None:
        facts["optimizer_state_bytes"] = state_bytes(optimizer, engine.bookkeeping_tensors())
    return facts


def selection_batches(train_dataloader, args, n: int) -> Iterator[dict]:
    """n training batches for the mask, drawn by a loader of our own (seeded by args.seed) over the Trainer's
    dataset and collator, so the Trainer's sampler state is untouched; process r takes batches r, r + W, ...
    """
    from torch.utils.data import DataLoader, RandomSampler

    dataset = train_dataloader.dataset
    loader = DataLoader(dataset, batch_size=args.per_device_train_batch_size, collate_fn=train_dataloader.collate_fn,
                        sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed)))
    rank, world = max(args.process_index, 0), max(args.world_size, 1)
    mine = itertools.islice(loader, rank, None, world)
    for batch in itertools.islice(mine, n):
        yield {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}


class SiftCallback(TrainerCallback):
    """Selects the mask when training starts and records SIFT facts when it ends."""

    def __init__(self, engine: SiftEngine, results: dict):
        self.engine, self.results = engine, results

    def on_train_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kw):
        opt = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimizer
        if isinstance(opt, SiftAdamW) and args.max_grad_norm and args.max_grad_norm > 0:
            # The Trainer clips model.parameters() only, where SIFT's targets hold no gradient.
            opt.max_grad_norm, args.max_grad_norm = args.max_grad_norm, 0.0
        if not self.engine.selected:  # not when resuming: load() restored the mask
            if self.engine.config.mask == "top" and train_dataloader is None:
                raise RuntimeError("SIFT needs the train dataloader to select its mask")
            # Selection must not shift the run's randomness (data order, dropout): otherwise a resumed run,
            # which skips selection, would see other batches than the uninterrupted one. So it draws its
            # batches from its own seeded loader and runs inside fork_rng.
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                batches = selection_batches(train_dataloader, args, self.engine.config.selection_batches) \
                    if train_dataloader is not None else []
                self.engine.select(batches)
            log.info("SIFT mask (%s) selected: %d entries in %d tensors; top-k share of the squared gradient %s",
                     self.engine.config.mask, self.engine.selected_params, len(self.engine.slots),
                     self.engine.grad_topk_share)
        self.results["sift"] = sift_facts(self.engine)

    def on_train_end(self, args, state, control, optimizer=None, **kw):
        opt = getattr(optimizer, "optimizer", optimizer)
        self.results["sift"] = sift_facts(self.engine, opt if isinstance(opt, SiftAdamW) else None)


class SIFT(StrategyBase):
    name = "sift"
    default_learning_rate = 1e-3
    options = (SiftOptions,)
    saves_own_checkpoints = True

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        cfg = ctx.config.sift_config(seed=getattr(ctx.config, "seed", 0), model=getattr(ctx.config, "model", None))
        # A task head (classification) trains densely; a causal LM's output layer is pre-trained weights like any
        # other, so with a head-less task (SFT) only the top-k entries of the targets train.
        dense = head_parameter_names(model) if getattr(ctx.task, "has_head", True) else []
        engine = SiftEngine(model, cfg, dense)
        setattr(model, ENGINE_ATTR, engine)
        ctx.results["trainable_params"] = engine.selected_params + engine.dense_params()
        ctx.results["sift"] = sift_facts(engine)
        return model

    def create_optimizer(self, model: nn.Module, ctx: StrategyContext) -> SiftAdamW:
        lr = ctx.learning_rate or learning_rate_for(self, ctx.config)
        return SiftAdamW(engine_of(model), lr=lr, weight_decay=ctx.config.weight_decay)

    def callbacks(self, model: nn.Module, ctx: StrategyContext) -> list[TrainerCallback]:
        return [SiftCallback(engine_of(model), ctx.results)]

    def save(self, model: nn.Module, folder: Path) -> None:
        save_delta(engine_of(model), folder)
        # The run's final model (Trainer checkpoints are named checkpoint-N); one writer even where every rank saves.
        if folder.name == FINAL_FOLDER and is_main_process():
            export_after_training(folder)

    def load(self, model: nn.Module, folder: Path) -> None:
        restore_engine(engine_of(model), load_delta(folder))


STRATEGIES.register("sift", SIFT())
