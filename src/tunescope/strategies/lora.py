"""`lora`: low-rank adapters (peft) on chosen modules of chosen layers; the classification head trains densely.

W' = W + (alpha / r) * B A with A: r x d_in, B: d_out x r, B initialised to 0, so training starts at the
pre-trained function. `--layers 3,4` restricts adapters to those blocks (peft `layers_to_transform`).
"""

from __future__ import annotations

from peft import LoraConfig, TaskType, get_peft_model
from torch import nn

from tunescope.errors import UserError
from tunescope.models.layers import model_layout
from tunescope.strategies.base import STRATEGIES, StrategyContext

# Attention projections per architecture: where LoRA is usually put (Hu et al. 2021 adapt q and v;
# we adapt q, k, v, which reaches full-FT accuracy more reliably on small encoders).
DEFAULT_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
}


def lora_config_for(model: nn.Module, *, rank: int, alpha: float, dropout: float,
                    targets: list[str] | None = None, layers: list[int] | None = None,
                    task_type: TaskType = TaskType.SEQ_CLS) -> LoraConfig:
    """A peft LoraConfig for `model`, validating `layers` against the number of blocks."""
    layout = model_layout(model)
    targets = targets or DEFAULT_TARGETS[layout.model_type]
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise UserError(f"bad value {missing[0]!r} for lora_targets: no module of that name in this "
                        f"{layout.model_type} model; defaults: {', '.join(DEFAULT_TARGETS[layout.model_type])}")
    kwargs = {}
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < layout.num_layers]
        if bad or not layers:
            raise UserError(f"bad value {layers!r} for layers: expected block indices in 0..{layout.num_layers - 1}")
        kwargs = {"layers_to_transform": sorted(set(layers)),
                  "layers_pattern": layout.blocks_path.rsplit(".", 1)[-1]}
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                      task_type=task_type, **kwargs)


def apply_lora(model: nn.Module, config, layers: list[int] | None = None) -> nn.Module:
    """Wrap `model` with LoRA adapters from FinetuneConfig-like `config` (lora_rank, lora_alpha, ...)."""
    if config.lora_rank < 1:
        raise UserError(f"bad value {config.lora_rank!r} for lora_rank: expected a positive integer")
    lcfg = lora_config_for(model, rank=config.lora_rank, alpha=config.lora_alpha, dropout=config.lora_dropout,
                           targets=config.lora_targets, layers=layers)
    return get_peft_model(model, lcfg)


class LoRA:
    name = "lora"
    default_learning_rate = 5e-4

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        model = apply_lora(model, ctx.config, layers=ctx.config.layers)
        ctx.results["adapted_layers"] = (sorted(ctx.config.layers) if ctx.config.layers is not None
                                         else list(range(model_layout(model).num_layers)))
        return model


STRATEGIES.register("lora", LoRA())
