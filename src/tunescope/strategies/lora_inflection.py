"""`lora-inflection`: diagnose first, inject light - LoRA adapters only at the inflection layers.

prepare() draws probe batches from the training split, runs the one-pass per-layer diagnostics on the
pre-trained model, selects the inflection band (score_l = z(-H_l) + z(log(A_{l+1} / A_l)), the contiguous band of
width w with the highest total; METHODS.md section 1) and wraps the model with the `lora` strategy's peft config
restricted to those blocks (`layers_to_transform`). results.json gets `diagnostics.*` and `adapted_layers`.
Layers given explicitly (`--layers`, or ctx.inflection_layers from an earlier diagnosis) skip the diagnosis.
"""

from __future__ import annotations

from torch import nn

from tunescope.diagnostics.options import ProbeOptions, draw_probe
from tunescope.errors import UserError
from tunescope.strategies.base import STRATEGIES, StrategyBase, StrategyContext
from tunescope.strategies.lora import LoraOptions, apply_lora, peft_task_type


def probe_for(ctx: StrategyContext) -> list[dict]:
    """The probe batches of a run: seeded draws from the tokenised training split."""
    if "train" not in ctx.tokenized:
        raise UserError("bad context for lora-inflection: no tokenised training split to draw probe batches from")
    return draw_probe(ctx.config, ctx.tokenized["train"], ctx.tokenizer, ctx.collator)  # SFT: trl's masked labels


class LoRAInflection(StrategyBase):
    name = "lora-inflection"
    default_learning_rate = 5e-4
    options = (LoraOptions, ProbeOptions)

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        from tunescope.diagnostics.layerwise import diagnose

        layers = ctx.config.layers or ctx.inflection_layers
        if layers is None:
            found = ctx.results.get("diagnostics")
            if not found or "inflection_layers" not in found:
                found, _ = diagnose(model, probe_for(ctx), width=ctx.config.inflection_width)
                ctx.results["diagnostics"] = found
            layers = found["inflection_layers"]
            ctx.results["adapted_because"] = found["reason"]
        else:
            ctx.results["adapted_because"] = "layers given explicitly"
        ctx.inflection_layers = sorted(layers)
        model = apply_lora(model, ctx.config, layers=ctx.inflection_layers, task_type=peft_task_type(ctx))
        ctx.results["adapted_layers"] = ctx.inflection_layers
        return model


STRATEGIES.register("lora-inflection", LoRAInflection())
