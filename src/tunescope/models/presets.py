"""Llama-style size presets for small pre-training runs (`tunescope pretrain --preset NAME`).

Parameter counts below are for a 4096-token vocabulary with tied input/output embeddings (the
default of `tunescope pretrain`); `build_llama` reports the exact count of the built model.
`micro` and `mini` exist for CPU-only experiments between the three named sizes.

| preset | hidden | layers | heads (kv) | MLP  | params (vocab 4096) |
|--------|--------|--------|------------|------|---------------------|
| micro  | 64     | 4      | 4 (2)      | 176  | ~0.4M               |
| tiny   | 128    | 4      | 4 (2)      | 352  | ~1.2M               |
| mini   | 192    | 6      | 6 (3)      | 512  | ~3.3M               |
| small  | 320    | 8      | 8 (4)      | 864  | ~10M                |
| base   | 448    | 12     | 8 (4)      | 1216 | ~29M                |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tunescope.errors import UnknownNameError


@dataclass(frozen=True)
class LlamaPreset:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int


PRESETS: dict[str, LlamaPreset] = {
    "micro": LlamaPreset(64, 4, 4, 2, 176),
    "tiny": LlamaPreset(128, 4, 4, 2, 352),
    "mini": LlamaPreset(192, 6, 6, 3, 512),
    "small": LlamaPreset(320, 8, 8, 4, 864),
    "base": LlamaPreset(448, 12, 8, 4, 1216),
}


def get_preset(name: str) -> LlamaPreset:
    if name not in PRESETS:
        raise UnknownNameError("model preset", name, PRESETS)
    return PRESETS[name]


def llama_config(preset: str, *, vocab_size: int, max_length: int, pad_token_id: int, bos_token_id: int,
                 eos_token_id: int, tie_embeddings: bool = True) -> LlamaConfig:
    """LlamaConfig of `preset` for a tokenizer of `vocab_size` and sequences up to `max_length` tokens."""
    shape = get_preset(preset)
    return LlamaConfig(**asdict(shape), vocab_size=vocab_size, max_position_embeddings=max_length,
                       pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                       tie_word_embeddings=tie_embeddings, rms_norm_eps=1e-5, initializer_range=0.02)


def build_llama(config: LlamaConfig, seed: int) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM (fp32, SDPA attention), seeded for reproducibility."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(config.__class__.from_dict({**config.to_dict(), "_attn_implementation": "sdpa"}))


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
