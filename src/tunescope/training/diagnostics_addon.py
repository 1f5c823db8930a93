"""Training add-on `diagnostics`: the diagnose-first tables of a fine-tuning (or SFT) run, and the per-layer metrics
during training.

before training: the per-layer table of the pre-trained model (unless the strategy already measured it, as
`lora-inflection` does) and its block outputs on the probe batches; after training: Delta-CKA per layer between
the pre-trained and the fine-tuned model, and the fine-tuned model's table (`diagnostics_after`). On when the
config sets `diagnose` (or the strategy is lora-inflection).
during training: with `diagnose_every` = N > 0, a DiagnosticsCallback (training/callbacks.py) measures every
registered per-layer metric on the same probe batches every N optimizer steps and logs `diag/layer_XX/<key>`
into the Trainer's logs (metrics.jsonl, TensorBoard, W&B ...).

The probe batches are drawn once (diagnostics.options.draw_probe) through the task's own collator: for SFT that is
trl's, so the labels stay -100 outside the completion tokens and every metric that needs a backward pass (gradient
norms) measures the masked SFT loss, the loss training minimises.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check
from tunescope.diagnostics.options import draw_probe
from tunescope.training.addons import TRAINING_ADDONS, AddonBase, RunState


@dataclass
class DiagnosticsOptions(Options):
    """The diagnostics switches of a training command's config (the probe batches are ProbeOptions)."""

    diagnose: bool = False
    """Per-layer table of the pre-trained model before training, Delta-CKA and the fine-tuned table after."""
    diagnose_every: int = 0
    """Log every per-layer metric (diag/layer_XX/<key>) on the probe batches every N optimizer steps (0: off)."""

    def validate(self) -> None:
        check(self.diagnose_every >= 0, "diagnose_every", self.diagnose_every, "an integer >= 0 (0: off)")


def probe(run: RunState) -> list[dict]:
    """The run's probe batches (drawn on first use, then shared by the tables and the callback)."""
    if "diag_probe" not in run.extras:
        run.extras["diag_probe"] = draw_probe(run.config, run.tokenized["train"], run.tokenizer,
                                              collate=run.collator)
    return run.extras["diag_probe"]


def before_train(run: RunState) -> None:
    """Pre-trained model: per-layer table (if not measured yet) and block outputs on the probe batches."""
    from tunescope.diagnostics.layerwise import collect_hidden_states, diagnose

    cfg = run.config
    batches = probe(run)
    pristine = run.base_model_factory()
    if "layers" not in run.results.get("diagnostics", {}):
        found, capture = diagnose(pristine, batches, width=cfg.inflection_width,
                                  keep_hidden=True)
        run.results["diagnostics"] = found
        hidden = capture.hidden_states()
    else:
        hidden = collect_hidden_states(pristine, batches)
    run.extras["diag_hidden_before"] = hidden
    del pristine


def after_train(run: RunState) -> None:
    """Delta-CKA (pre-trained vs fine-tuned) per layer, and the fine-tuned model's per-layer table."""
    if "diag_hidden_before" not in run.extras:
        return
    from tunescope.diagnostics.layerwise import add_delta_cka, collect_hidden_states
    from tunescope.diagnostics.sharded import layer_table

    batches = probe(run)
    found = run.results["diagnostics"]
    add_delta_cka(found["layers"], run.extras["diag_hidden_before"], collect_hidden_states(run.model, batches))
    after = layer_table(run.model, batches)  # full-tensor gradient norms under FSDP too (diagnostics/sharded.py)
    for row, before in zip(after, found["layers"]):
        row["delta_cka"] = before["delta_cka"]
    run.results["diagnostics_after"] = {"layers": after}


def _tables(config) -> bool:
    return bool(getattr(config, "diagnose", False)) or getattr(config, "strategy", None) == "lora-inflection"


def _every(config) -> int:
    return int(getattr(config, "diagnose_every", 0) or 0)


class DiagnoseFirst(AddonBase):
    """Per-layer table of the pre-trained model before training, Delta-CKA and the fine-tuned table after; the
    per-layer metrics every `diagnose_every` steps during training.

    Tables: on when the config asks (`diagnose`, on in `tunescope run`) or the strategy is lora-inflection.
    During training: on when the config has `diagnose_every` > 0 (`tunescope sft`).
    """

    name = "diagnostics"

    def enabled(self, config) -> bool:
        return _tables(config) or _every(config) > 0

    def before_train(self, run: RunState) -> None:
        if _tables(run.config):
            before_train(run)

    def callbacks(self, run: RunState) -> list:
        if _every(run.config) <= 0:
            return []
        from tunescope.training.callbacks import DiagnosticsCallback

        return [DiagnosticsCallback(probe(run), every_n_steps=_every(run.config))]

    def after_train(self, run: RunState) -> None:
        after_train(run)


TRAINING_ADDONS.register("diagnostics", DiagnoseFirst())
