"""Training add-on `diagnostics`: the diagnose-first tables of a fine-tuning run.

before training: the per-layer table of the pre-trained model (unless the strategy already measured it, as
`lora-inflection` does) and its block outputs on the probe batches; after training: Delta-CKA per layer between
the pre-trained and the fine-tuned model, and the fine-tuned model's table (`diagnostics_after`).
"""

from __future__ import annotations

from tunescope.diagnostics.options import draw_probe
from tunescope.training.addons import TRAINING_ADDONS, AddonBase, RunState


def before_train(run: RunState) -> None:
    """Pre-trained model: per-layer table (if not measured yet) and block outputs on the probe batches."""
    from tunescope.diagnostics.layerwise import collect_hidden_states, diagnose

    cfg = run.config
    probe = draw_probe(cfg, run.tokenized["train"], run.tokenizer)
    pristine = run.base_model_factory()
    if "layers" not in run.results.get("diagnostics", {}):
        found, capture = diagnose(pristine, probe, width=cfg.inflection_width,
                                  keep_hidden=True)
        run.results["diagnostics"] = found
        hidden = capture.hidden_states()
    else:
        hidden = collect_hidden_states(pristine, probe)
    run.extras["diag_probe"] = probe
    run.extras["diag_hidden_before"] = hidden
    del pristine


def after_train(run: RunState) -> None:
    """Delta-CKA (pre-trained vs fine-tuned) per layer, and the fine-tuned model's per-layer table."""
    if "diag_probe" not in run.extras:
        return
    from tunescope.diagnostics.layerwise import (
        add_delta_cka,
        collect_hidden_states,
        layer_diagnostics,
    )

    probe = run.extras["diag_probe"]
    found = run.results["diagnostics"]
    add_delta_cka(found["layers"], run.extras["diag_hidden_before"], collect_hidden_states(run.model, probe))
    after, _ = layer_diagnostics(run.model, probe)
    for row, before in zip(after, found["layers"]):
        row["delta_cka"] = before["delta_cka"]
    run.results["diagnostics_after"] = {"layers": after}


class DiagnoseFirst(AddonBase):
    """Per-layer table of the pre-trained model before training, Delta-CKA and the fine-tuned table after.

    On when the config asks (`diagnose`, on in `tunescope run`) or the strategy is lora-inflection.
    """

    name = "diagnostics"

    def enabled(self, config) -> bool:
        return bool(getattr(config, "diagnose", False)) or getattr(config, "strategy", None) == "lora-inflection"

    def before_train(self, run: RunState) -> None:
        before_train(run)

    def after_train(self, run: RunState) -> None:
        after_train(run)


TRAINING_ADDONS.register("diagnostics", DiagnoseFirst())
