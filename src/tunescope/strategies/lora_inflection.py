"""`lora-inflection`: diagnose first, inject light - LoRA adapters only at the inflection layers.

prepare() draws probe batches from the training split, runs the one-pass per-layer diagnostics on the
pre-trained model, selects the inflection band (score_l = z(-H_l) + z(log(A_{l+1} / A_l)), the contiguous band of
width w with the highest total; METHODS.md section 1) and wraps the model with the `lora` strategy's peft config
restricted to those blocks (`layers_to_transform`). results.json gets `diagnostics.*` and `adapted_layers`.
Layers given explicitly (`--layers`, or ctx.inflection_layers from an earlier diagnosis) skip the diagnosis.
"""

from __future__ import annotations

from torch import nn

from tunescope.errors import UserError
from tunescope.strategies.base import STRATEGIES, StrategyContext
from tunescope.strategies.lora import apply_lora


def probe_for(ctx: StrategyContext) -> list[dict]:
    """The probe batches of a run: seeded draws from the tokenised training split."""
    from tunescope.data.tokenize import probe_batches

    cfg = ctx.config
    n_batches, size = int(getattr(cfg, "probe_batches", 2)), int(getattr(cfg, "probe_batch_size", 16))
    if n_batches < 1 or size < 1:
        raise UserError(f"bad value {min(n_batches, size)} for probe_batches/probe_batch_size: expected >= 1")
    if "train" not in ctx.tokenized:
        raise UserError("bad context for lora-inflection: no tokenised training split to draw probe batches from")
    return probe_batches(ctx.tokenized["train"], ctx.tokenizer, batch_size=size, num_batches=n_batches,
                         seed=int(getattr(cfg, "seed", 0)))


class LoRAInflection:
    name = "lora-inflection"
    default_learning_rate = 5e-4

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        from tunescope.diagnostics.layerwise import diagnose

        layers = ctx.config.layers or ctx.inflection_layers
        if layers is None:
            found = ctx.results.get("diagnostics")
            if not found or "inflection_layers" not in found:
                found, _ = diagnose(model, probe_for(ctx), width=getattr(ctx.config, "inflection_width", None))
                ctx.results["diagnostics"] = found
            layers = found["inflection_layers"]
            ctx.results["adapted_because"] = found["reason"]
        else:
            ctx.results["adapted_because"] = "layers given explicitly"
        ctx.inflection_layers = sorted(layers)
        model = apply_lora(model, ctx.config, layers=ctx.inflection_layers)
        ctx.results["adapted_layers"] = ctx.inflection_layers
        return model


STRATEGIES.register("lora-inflection", LoRAInflection())
