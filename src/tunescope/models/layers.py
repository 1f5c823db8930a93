"""Where things are inside a supported transformer: blocks, attention modules, embeddings, head.

Every instrument in tunescope (diagnostics, jump, SIFT targets, LoRA layer selection) needs the
same map of the model, so it lives here, once. `model_layout(model)` works on a plain HF model and
on a peft-wrapped one.

Supported model types (config.model_type): bert, roberta, distilbert, gpt2, llama, qwen2, mistral.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tunescope.errors import UserError


@dataclass(frozen=True)
class _Paths:
    """Dotted attribute paths, relative to the *base* transformer (model.base_model)."""

    blocks: str
    attention: str  # relative to one block
    embeddings: str
    final_norm: str | None
    # Relative to the task model (the one with the head); tried in order.
    heads: tuple[str, ...]
    family: str  # "encoder" or "decoder"


ARCHITECTURES: dict[str, _Paths] = {
    "bert": _Paths("encoder.layer", "attention.self", "embeddings", None, ("classifier", "cls"), "encoder"),
    "roberta": _Paths("encoder.layer", "attention.self", "embeddings", None, ("classifier", "lm_head"), "encoder"),
    "distilbert": _Paths("transformer.layer", "attention", "embeddings", None,
                         ("classifier", "vocab_projector"), "encoder"),
    "gpt2": _Paths("h", "attn", "wte", "ln_f", ("score", "lm_head"), "decoder"),
    "llama": _Paths("layers", "self_attn", "embed_tokens", "norm", ("score", "lm_head"), "decoder"),
    "qwen2": _Paths("layers", "self_attn", "embed_tokens", "norm", ("score", "lm_head"), "decoder"),
    "mistral": _Paths("layers", "self_attn", "embed_tokens", "norm", ("score", "lm_head"), "decoder"),
}


@dataclass
class ModelLayout:
    """The map of one model.

    blocks[l] is transformer block l (0-based); the residual stream after block l is its output
    (a tensor, or the first item of a tuple in some architectures / transformers versions).
    attentions[l] is the self-attention module of block l (the module that calls the attention
    function; its `layer_idx`-free position in this list is the layer index).
    h_0 (the embedding output) is the *input* of blocks[0]: use a forward pre-hook there, which
    works for every architecture (GPT-2 adds wte + wpe inline, so no module outputs h_0).
    block_prefixes[l] is the parameter-name prefix of block l in `model.named_parameters()`.
    """

    model_type: str
    family: str
    blocks: list[nn.Module]
    attentions: list[nn.Module]
    embeddings: nn.Module
    final_norm: nn.Module | None
    head: nn.Module | None
    head_name: str | None
    block_prefixes: list[str]
    blocks_path: str  # dotted path of the block list inside the top-level model

    @property
    def num_layers(self) -> int:
        return len(self.blocks)


def _get(obj: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def unwrap(model: nn.Module) -> nn.Module:
    """The HF task model inside peft wrappers (PeftModel -> LoraModel -> task model)."""
    try:
        from peft import PeftModel

        if isinstance(model, PeftModel):
            return model.get_base_model()
    except ImportError:  # pragma: no cover - peft is a hard dependency, kept defensive
        pass
    return model


def supported_model_types() -> list[str]:
    return sorted(ARCHITECTURES)


def model_layout(model: nn.Module) -> ModelLayout:
    """Find blocks, attention modules, embeddings, final norm and head of `model`.

    Raises UserError naming the supported architectures when the model type is unknown.
    """
    task = unwrap(model)
    config = getattr(task, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise UserError(
            f"unsupported architecture {model_type!r}; supported model types: {', '.join(supported_model_types())}"
        )
    paths = ARCHITECTURES[model_type]
    base = getattr(task, "base_model", task)
    blocks = _get(base, paths.blocks)
    if blocks is None:
        raise UserError(f"could not find the transformer blocks ({paths.blocks}) in this {model_type} model")
    blocks = list(blocks)
    attentions = [_get(b, paths.attention) for b in blocks]
    head_name, head = None, None
    for name in paths.heads:
        mod = _get(task, name)
        if mod is not None:
            head_name, head = name, mod
            break
    # Parameter-name prefix of each block in the *given* model (peft adds its own prefix).
    ids = {id(b): i for i, b in enumerate(blocks)}
    prefixes: list[str | None] = [None] * len(blocks)
    for name, mod in model.named_modules():
        i = ids.get(id(mod))
        if i is not None and prefixes[i] is None:
            prefixes[i] = name + "."
    blocks_path = prefixes[0][: -len(".0.")] if prefixes and prefixes[0] else paths.blocks
    return ModelLayout(
        model_type=model_type,
        family=paths.family,
        blocks=blocks,
        attentions=attentions,
        embeddings=_get(base, paths.embeddings),
        final_norm=_get(base, paths.final_norm) if paths.final_norm else None,
        head=head,
        head_name=head_name,
        block_prefixes=[p or "" for p in prefixes],
        blocks_path=blocks_path,
    )


def block_index_of(param_name: str, layout: ModelLayout) -> int | None:
    """The block index a parameter belongs to, or None (embeddings, head, final norm)."""
    for i, prefix in enumerate(layout.block_prefixes):
        if param_name.startswith(prefix):
            return i
    return None


def head_parameter_names(model: nn.Module) -> list[str]:
    """Names of the task-head parameters (as they appear in model.named_parameters()); [] without a head."""
    layout = model_layout(model)
    if layout.head is None:
        return []
    ids = {id(p) for p in layout.head.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in ids]
