"""Find the parts of a transformer from the model itself, without a per-architecture table.

What is discovered, and how (each rule reads transformers' own class attributes, or the module tree):

- blocks: the nn.ModuleList whose items are the class `model._no_split_modules` names (transformers
  lists the transformer-block class there so that accelerate never splits a block across devices);
  without that attribute, the longest ModuleList of same-class modules under `model.base_model`,
  preferring lists whose items hold an attention module.
- attention: in each block, the first module whose class's `forward` (or a method of its own that
  `forward` calls) looks up transformers' `ALL_ATTENTION_FUNCTIONS`: in transformers 5 that lookup is
  how every model that supports attention backends (`_supports_attention_backend`) runs its attention
  kernel, and it is the hook attention entropy is measured through (diagnostics/attention.py).
- embeddings: the outermost module above `get_input_embeddings()` that does not also hold the blocks
  (BERT's `embeddings`, GPT-2's `wte`, OPT's `decoder.embed_tokens`).
- final norm: a normalisation module next to the block list (a child of the block list's parent), not an
  embedding norm; None when the blocks' parent has none (post-norm encoders such as BERT).
- head: the child of the task model, outside the base model, that holds the output layer:
  `get_output_embeddings()` for language models, else the last nn.Linear with `config.num_labels`
  outputs (a sequence classifier's `score` / `classifier`); None for a bare base model.
- family: "decoder" when the attention module is causal (`is_causal`), else "encoder"; when the attention
  module does not say, decoder iff the type has a causal-LM class but no masked-LM class.
"""

from __future__ import annotations

import functools
import inspect

from torch import nn

ATTENTION_INTERFACE = "ALL_ATTENTION_FUNCTIONS"  # transformers.modeling_utils' attention-function registry
_NORM_TYPES = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm)


def unsupported_reason(model_class: type) -> str | None:
    """Why instances of `model_class` cannot be measured, from the class alone (None = no objection).

    Attention entropy swaps in a custom attention function through transformers' AttentionInterface;
    transformers states per class whether its attention honours that interface.
    """
    if not getattr(model_class, "_supports_attention_backend", False):
        return (f"{model_class.__name__} does not route attention through transformers' attention interface "
                "(_supports_attention_backend is False), so attention entropy cannot be measured")
    return None


@functools.cache
def _class_calls_attention_interface(cls: type) -> bool:
    forward = getattr(cls, "forward", None)
    if forward is None or cls.forward is nn.Module.forward:
        return False
    seen = [inspect.unwrap(forward)]
    code = getattr(seen[0], "__code__", None)
    if code is None:
        return False
    # One level of indirection: a forward that delegates to its own method (self._attn(...)) counts too.
    for name in code.co_names:
        method = inspect.getattr_static(cls, name, None)
        if inspect.isfunction(method) and name != "forward" and not hasattr(nn.Module, name):
            seen.append(inspect.unwrap(method))
    for fn in seen:
        fcode = getattr(fn, "__code__", None)
        if fcode is not None and ATTENTION_INTERFACE in fcode.co_names:
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

            if fn.__globals__.get(ATTENTION_INTERFACE) is ALL_ATTENTION_FUNCTIONS:
                return True
    return False


def calls_attention_interface(module: nn.Module) -> bool:
    """True when `module`'s forward runs its attention kernel through transformers' attention interface."""
    return _class_calls_attention_interface(type(module))


def _same_class_lists(base: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    out = []
    for name, mod in base.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0 and len({type(m) for m in mod}) == 1:
            out.append((name, mod))
    return out


def _holds_attention(block: nn.Module) -> bool:
    return any(calls_attention_interface(m) for m in block.modules())


def find_blocks(task: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(dotted path relative to `task.base_model`, the block list), or None when there is none."""
    base = getattr(task, "base_model", task)
    lists = _same_class_lists(base)
    declared = set(getattr(task, "_no_split_modules", None) or ())
    named = [(n, lst) for n, lst in lists if type(lst[0]).__name__ in declared]
    if named:
        candidates = named
    else:
        candidates = [(n, lst) for n, lst in lists if _holds_attention(lst[0])] or lists
    if not candidates:
        return None
    return max(candidates, key=lambda item: len(item[1]))  # max keeps the first of equally long lists


def find_attention(block: nn.Module) -> tuple[str, nn.Module] | None:
    """(dotted path relative to `block`, the self-attention module) of one block, or None.

    The first module calling the attention interface; cross-attention (decoder-mode BERT) comes after
    self-attention in every block, and is skipped by name as well.
    """
    found = [(n, m) for n, m in block.named_modules() if n and calls_attention_interface(m)]
    own = [(n, m) for n, m in found if "cross" not in n.lower()]
    return (own or found or [None])[0]


def _contains(prefix: str, path: str) -> bool:
    """Whether the module at dotted `prefix` holds the module at dotted `path`."""
    return path == prefix or path.startswith(prefix + ".")


def find_embeddings(base: nn.Module, blocks_path: str) -> nn.Module | None:
    """The input-embedding module of `base` (see the module docstring); None if the model has none."""
    try:
        token_embedding = base.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        token_embedding = next((m for m in base.modules() if isinstance(m, nn.Embedding)), None)
    if token_embedding is None:
        return None
    path = next((n for n, m in base.named_modules() if m is token_embedding), None)
    if path is None:
        return token_embedding
    parts = path.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if not _contains(prefix, blocks_path):
            return base.get_submodule(prefix)
    return token_embedding


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def find_final_norm(base: nn.Module, blocks_path: str) -> nn.Module | None:
    """The normalisation applied after the last block, if the blocks' parent module has one."""
    parent_path, _, list_name = blocks_path.rpartition(".")
    parent = base.get_submodule(parent_path) if parent_path else base
    norms = [m for n, m in parent.named_children()
             if n != list_name and _is_norm(m) and "emb" not in n.lower()]  # Bloom's embedding layer norm
    return norms[-1] if norms else None


def find_head(task: nn.Module) -> tuple[str | None, nn.Module | None]:
    """(name, module) of the task head: the child of `task` (outside its base model) holding the output layer."""
    base = getattr(task, "base_model", task)
    if base is task:
        return None, None
    output = None
    get_output = getattr(task, "get_output_embeddings", None)
    if callable(get_output):
        output = get_output()
    if output is None:
        num_labels = getattr(getattr(task, "config", None), "num_labels", None)
        linears = [m for name, child in task.named_children() if child is not base
                   for m in child.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
        output = linears[-1] if linears else None
    if output is None:
        return None, None
    for name, child in task.named_children():
        if child is not base and any(m is output for m in child.modules()):
            return name, child
    return None, None


def family_of_type(model_type: str | None) -> str:
    """"decoder" when transformers has a causal-LM class but no masked-LM class for the type, else "encoder"."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def find_family(attention: nn.Module, model_type: str | None) -> str:
    """"decoder" or "encoder": the attention module's own `is_causal` flag, else `family_of_type`."""
    causal = getattr(attention, "is_causal", None)
    if isinstance(causal, bool):
        return "decoder" if causal else "encoder"
    return family_of_type(model_type)


def projection_layer(module: nn.Module) -> nn.Module | None:
    """`module` (or the layer a peft adapter wraps) when it is a Linear / GPT-2 Conv1D with a 2-D weight."""
    from transformers.pytorch_utils import Conv1D

    get_base = getattr(module, "get_base_layer", None)
    layer = get_base() if callable(get_base) else module
    weight = getattr(layer, "weight", None)
    if isinstance(layer, (nn.Linear, Conv1D)) and isinstance(weight, nn.Parameter) and weight.dim() == 2:
        return layer
    return None


def _projections_under(module: nn.Module, prefix: str) -> list[str]:
    """Dotted names (under `prefix`) of the projection layers in `module`; a projection layer's own
    insides (peft's base_layer, lora_A, ...) are not descended into."""
    if projection_layer(module):
        return [prefix]
    return [name for child_name, child in module.named_children()
            for name in _projections_under(child, f"{prefix}.{child_name}")]


def attention_projections(block: nn.Module, attention_path: str, *, with_output: bool) -> list[str]:
    """Block-relative names of the attention's projections.

    The Linear / Conv1D children of the attention module itself (q, k, v, o; GPT-2's c_attn, c_proj);
    with `with_output`, also the projections of the attention module's siblings when it sits inside an
    attention container (BERT: attention.self holds q, k, v; attention.output.dense is the output
    projection, a sibling of it).
    """
    attention = block.get_submodule(attention_path)
    names = [f"{attention_path}.{n}" for n, child in attention.named_children() if projection_layer(child)]
    parent_path, _, own = attention_path.rpartition(".")
    if with_output and parent_path:
        for sibling_name, sibling in block.get_submodule(parent_path).named_children():
            if sibling_name != own:
                names += _projections_under(sibling, f"{parent_path}.{sibling_name}")
    return names
