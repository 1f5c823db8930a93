"""`lora`: low-rank adapters (peft) on chosen modules of chosen layers; the classification head trains densely.

W' = W + (alpha / r) * B A with A: r x d_in, B: d_out x r, B initialised to 0, so training starts at the
pre-trained function. `--layers 3,4` restricts adapters to those blocks (peft `layers_to_transform`).
"""

from __future__ import annotations

from peft import LoraConfig, TaskType, get_peft_model
from torch import nn

from tunescope.errors import UserError
from tunescope.models.layers import default_lora_targets, model_layout
from tunescope.strategies.base import STRATEGIES, StrategyBase, StrategyContext
from tunescope.strategies.options import LoraOptions  # re-exported

# Default targets: the projections inside each block's attention module, discovered from the model
# (models.layers.default_lora_targets; BERT q, k, v; Llama q, k, v, o). Hu et al. 2021 adapt q and v only;
# q, k, v reaches full-FT accuracy more reliably on small encoders.


def lora_config_for(model: nn.Module, *, rank: int, alpha: float, dropout: float,
                    targets: list[str] | None = None, layers: list[int] | None = None,
                    task_type: TaskType = TaskType.SEQ_CLS) -> LoraConfig:
    """A peft LoraConfig for `model`, validating `layers` against the number of blocks."""
    layout = model_layout(model)
    defaults = default_lora_targets(model)
    targets = targets or defaults
    names = [n for n, _ in model.named_modules()]  # peft's rule: a target is a whole name or a dotted suffix
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise UserError(f"bad value {missing[0]!r} for lora_targets: no module of that name in this "
                        f"{layout.model_type} model; defaults: {', '.join(defaults)}")
    kwargs = {}
    if layers is not None:
        bad = [i for i in layers if not 0 <= i < layout.num_layers]
        if bad or not layers:
            raise UserError(f"bad value {layers!r} for layers: expected block indices in 0..{layout.num_layers - 1}")
        kwargs = {"layers_to_transform": sorted(set(layers)),
                  "layers_pattern": layout.blocks_path.rsplit(".", 1)[-1]}
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                      task_type=task_type, **kwargs)


def peft_task_type(ctx: StrategyContext) -> TaskType:
    """The peft TaskType of the model the context's task made (SEQ_CLS when no task is given: classification)."""
    return TaskType[getattr(ctx.task, "peft_task_type", None) or "SEQ_CLS"]


def apply_lora(model: nn.Module, config, layers: list[int] | None = None,
               task_type: TaskType = TaskType.SEQ_CLS) -> nn.Module:
    """Wrap `model` with LoRA adapters from FinetuneConfig-like `config` (lora_rank, lora_alpha, ...); `task_type`
    picks peft's wrapper (SEQ_CLS for a classifier, CAUSAL_LM for a causal LM: its forward, generate and
    adapter_config.json's task_type)."""
    if config.lora_rank < 1:
        raise UserError(f"bad value {config.lora_rank!r} for lora_rank: expected a positive integer")
    lcfg = lora_config_for(model, rank=config.lora_rank, alpha=config.lora_alpha, dropout=config.lora_dropout,
                           targets=config.lora_targets, layers=layers, task_type=task_type)
    return get_peft_model(model, lcfg)


class LoRA(StrategyBase):
    name = "lora"
    default_learning_rate = 5e-4
    options = (LoraOptions,)

    def prepare(self, model: nn.Module, ctx: StrategyContext) -> nn.Module:
        model = apply_lora(model, ctx.config, layers=ctx.config.layers, task_type=peft_task_type(ctx))
        ctx.results["adapted_layers"] = (sorted(ctx.config.layers) if ctx.config.layers is not None
                                         else list(range(model_layout(model).num_layers)))
        return model


STRATEGIES.register("lora", LoRA())
