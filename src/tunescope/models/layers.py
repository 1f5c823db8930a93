"""Where things are inside a transformer: blocks, attention modules, embeddings, head.

Every instrument in tunescope (diagnostics, jump, SIFT targets, LoRA layer selection) needs the
same map of the model, so it lives here, once. `model_layout(model)` works on a plain HF model and
on a peft-wrapped one. Nothing is listed per architecture: the map is discovered from the model itself
(models/discovery.py says what and how), so any transformers model type whose attention goes through
transformers' attention interface works; any other is refused with a UserError naming the reason.
The default LoRA / SIFT targets are derived from the discovered attention modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tunescope.errors import UserError
from tunescope.models import discovery


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


def unwrap(model: nn.Module) -> nn.Module:
    """The HF task model inside peft wrappers (PeftModel -> LoraModel -> task model)."""
    try:
        from peft import PeftModel

        if isinstance(model, PeftModel):
            return model.get_base_model()
    except ImportError:  # pragma: no cover - peft is a hard dependency, kept defensive
        pass
    return model


def _unsupported(model_type: str | None, reason: str) -> UserError:
    return UserError(f"unsupported architecture {model_type!r}: {reason}")


def model_layout(model: nn.Module) -> ModelLayout:
    """Find blocks, attention modules, embeddings, final norm and head of `model` (by discovery).

    Raises UserError naming the model type and the reason when the model cannot be measured: its class
    does not support transformers' attention interface, no block list is found, or a block has no
    attention module calling that interface.
    """
    task = unwrap(model)
    model_type = getattr(getattr(task, "config", None), "model_type", None)
    reason = discovery.unsupported_reason(type(task))
    if reason:
        raise _unsupported(model_type, reason)
    base = getattr(task, "base_model", task)
    found = discovery.find_blocks(task)
    if found is None:
        raise _unsupported(model_type, f"no list of transformer blocks found in {type(base).__name__} "
                                       "(no ModuleList of the block class named by _no_split_modules)")
    blocks_rel, block_list = found
    blocks = list(block_list)
    attentions = []
    for i, block in enumerate(blocks):
        hit = discovery.find_attention(block)
        if hit is None:
            raise _unsupported(model_type, f"block {i} ({type(block).__name__}) has no module that calls "
                                           "transformers' attention interface, so attention entropy cannot be "
                                           "measured")
        attentions.append(hit[1])
    head_name, head = discovery.find_head(task)
    # Parameter-name prefix of each block in the *given* model (peft adds its own prefix).
    ids = {id(b): i for i, b in enumerate(blocks)}
    prefixes: list[str | None] = [None] * len(blocks)
    for name, mod in model.named_modules():
        i = ids.get(id(mod))
        if i is not None and prefixes[i] is None:
            prefixes[i] = name + "."
    blocks_path = prefixes[0][: -len(".0.")] if prefixes and prefixes[0] else blocks_rel
    return ModelLayout(
        model_type=model_type,
        family=discovery.find_family(attentions[0], model_type),
        blocks=blocks,
        attentions=attentions,
        embeddings=discovery.find_embeddings(base, blocks_rel),
        final_norm=discovery.find_final_norm(base, blocks_rel),
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


def _attention_paths(layout: ModelLayout) -> list[str]:
    """Block-relative path of the attention module of each block."""
    paths = []
    for block, attention in zip(layout.blocks, layout.attentions):
        paths.append(next(n for n, m in block.named_modules() if m is attention))
    return paths


def _projections(layout: ModelLayout, *, with_output: bool) -> list[str]:
    """Block-relative names of the attention projections, over all blocks, first-seen order."""
    names: list[str] = []
    for block, path in zip(layout.blocks, _attention_paths(layout)):
        for name in discovery.attention_projections(block, path, with_output=with_output):
            if name not in names:
                names.append(name)
    return names


def default_sift_targets(model: nn.Module) -> list[str]:
    """SIFT's default target patterns: the attention q, k, v, o projections, as block-relative names.

    The Linear / Conv1D layers directly inside each block's attention module, plus the attention output
    projection where it lives in a sibling module (BERT's attention.output.dense). Examples: BERT
    attention.self.query/key/value + attention.output.dense; GPT-2 attn.c_attn + attn.c_proj; Llama
    self_attn.q_proj/k_proj/v_proj/o_proj. Each name matches as a dotted suffix (strategies/sift/config.py).
    """
    return _projections(model_layout(model), with_output=True)


def default_lora_targets(model: nn.Module) -> list[str]:
    """LoRA's default `target_modules`: the Linear / Conv1D layers directly inside the attention modules.

    Each is named by its shortest dotted suffix that selects no module outside those layers (peft matches
    a target as the whole name or a dotted suffix): BERT query, key, value; Llama q_proj, k_proj, v_proj,
    o_proj; GPT-2 c_attn and attn.c_proj (its MLP has a c_proj too).
    """
    layout = model_layout(model)
    relative = _projections(layout, with_output=False)
    chosen = {prefix + rel for prefix in layout.block_prefixes for rel in relative}
    names = [n for n, _ in model.named_modules()]
    targets = []
    for rel in relative:
        parts = rel.split(".")
        for k in range(1, len(parts) + 1):
            suffix = ".".join(parts[-k:])
            if all(n in chosen for n in names if n == suffix or n.endswith("." + suffix)):
                break
        targets.append(suffix)
    return list(dict.fromkeys(targets))
