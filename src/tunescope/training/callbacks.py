"""DiagnosticsCallback: per-layer diagnostics every N steps, logged into the Trainer's logs.

Usable in any transformers Trainer (not only tunescope's):

    probe = probe_batches(tokenized["train"], tokenizer, batch_size=16, num_batches=2, seed=0)
    cb = DiagnosticsCallback(probe, every_n_steps=50, metrics=["attn_entropy", "act_grad_norm"])
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[cb])
    trainer.train()      # logs diag/layer_00/attn_entropy, diag/layer_00/act_grad_norm, ...

The keys reach TensorBoard / W&B / MLflow without any extra call: when the Trainer first calls this callback
(on_init_end / on_train_begin) it moves itself ahead of the reporting integrations in the Trainer's callback list
(`attach(trainer)` does the same explicitly).

Every `every_n_steps` optimizer steps (main process only) it runs one forward + backward over the fixed probe
batches with `torch.autograd.grad` (the training step's gradients and optimizer state are not touched), asks the
Trainer to log, and adds `diag/layer_XX/<key>` (0-based XX) for every key of the chosen metrics to that log entry.
Under FSDP (sharded parameters) every process runs the pass with the same probe batches and the gradient norms are
those of the full tensors, computed from the shards (diagnostics/sharded.py).
`history` keeps every measurement. `metrics` are names from the metric registry (diagnostics.metrics; default:
all recorded ones), so a newly registered metric is logged without an edit here.

The loss it differentiates is the model's own loss on the probe batches' `labels`, so the probe decides what is
measured. In trl's SFTTrainer, draw it from the trainer's prepared data through its collator, which keeps the
labels -100 outside the completion / assistant tokens (the masked SFT loss the trainer minimises):

    trainer = SFTTrainer(model=model, args=SFTConfig(..., assistant_only_loss=True), train_dataset=chats, ...)
    probe = probe_batches(trainer.train_dataset, tokenizer, batch_size=8, num_batches=2, seed=0,
                          collate=trainer.data_collator)
    trainer.add_callback(DiagnosticsCallback(probe, every_n_steps=50))

(With packing=True the trainer's rows are packed and its collator is padding-free: draw the probe from unpacked
rows, e.g. data.sft_prepare.sft_probe_batches on tunescope's own preparation.) `tunescope sft --diagnose-every N`
does this through the `diagnostics` training add-on.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

from transformers import TrainerCallback

from tunescope.diagnostics.metrics import check_metrics
from tunescope.diagnostics.sharded import is_sharded, layer_table
from tunescope.errors import UserError


def flatten_rows(rows: list[dict], prefix: str = "diag") -> dict[str, float]:
    """[{"layer": 0, "attn_entropy": ..}, ..] -> {"diag/layer_00/attn_entropy": .., ..} (finite values only)."""
    out = {}
    for row in rows:
        for key, value in row.items():
            if key != "layer" and isinstance(value, float) and math.isfinite(value):
                out[f"{prefix}/layer_{row['layer']:02d}/{key}"] = value
    return out


class DiagnosticsCallback(TrainerCallback):
    """Opt-in per-layer diagnostics during training (see module docstring)."""

    def __init__(self, probe_batches: Sequence[dict], every_n_steps: int = 50, metrics: Sequence[str] | None = None):
        if int(every_n_steps) < 1:
            raise UserError(f"bad value {every_n_steps} for every_n_steps: expected an integer >= 1")
        if not probe_batches:
            raise UserError("bad value 0 for the number of probe batches: expected at least 1")
        self.probe_batches = list(probe_batches)
        self.every_n_steps = int(every_n_steps)
        self.metrics = check_metrics(metrics)
        self.history: list[dict] = []  # [{"step": s, "layers": rows}]
        self._pending: dict[str, float] | None = None

    def attach(self, trainer) -> DiagnosticsCallback:
        """Place this callback right after DefaultFlowCallback, before the reporting integrations."""
        self._move_first(trainer.callback_handler.callbacks)
        return self

    def _move_first(self, callbacks: list) -> None:
        # on_log runs the callbacks in list order: a reporter (TensorBoardCallback, WandbCallback ...) placed
        # before us would write its log entry before our diag/ keys are in it.
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(min(1, len(callbacks)), self)

    def _attach_to_caller(self) -> None:
        """Find the CallbackHandler that is calling us (two frames up: call_event -> on_*) and move ahead."""
        from transformers.trainer_callback import CallbackHandler

        frame = inspect.currentframe()
        try:
            for _ in range(6):
                frame = frame.f_back if frame is not None else None
                handler = frame.f_locals.get("self") if frame is not None else None
                if isinstance(handler, CallbackHandler):
                    self._move_first(handler.callbacks)
                    return
        finally:
            del frame

    def on_init_end(self, args, state, control, **kwargs):
        self._attach_to_caller()
        return control

    def on_train_begin(self, args, state, control, **kwargs):
        self._attach_to_caller()
        return control

    def measure(self, model, step: int) -> dict[str, float]:
        rows = layer_table(model, self.probe_batches, metrics=self.metrics)  # FSDP: norms of the full tensors
        self.history.append({"step": step, "layers": rows})
        return flatten_rows(rows)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.every_n_steps:
            return control
        control.should_log = True  # on every process: the Trainer's log gathers the loss across processes
        # A sharded (FSDP) model's pass is collective: every process runs it, process 0 reports.
        if state.is_world_process_zero or is_sharded(model):
            pending = self.measure(model, state.global_step)
            self._pending = pending if state.is_world_process_zero else None
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._pending and logs is not None:
            logs.update(self._pending)
            if state.log_history:  # the Trainer stored a copy of `logs` before calling us
                state.log_history[-1].update(self._pending)
            self._pending = None
        return control
