"""SIFT, sparse increment fine-tuning (Song et al., ICML 2024, arXiv 2312.11875), done right.

config.py     options, k = floor(rate * numel) + 1, default targets (attention q,k,v,o)
mask.py       top-k |accumulated gradient| / random mask
sparse.py     SiftEngine: per-tensor sparse slots fed by post-accumulate-grad hooks that free dense grads
indices.py    the k selected positions packed (int16 offsets in 2**15-entry blocks, or int32): ~2 bytes each
optimizer.py  SiftAdamW: fp32 AdamW over the k increments + head, decoupled decay on real entries, exact steps
accounting.py training-state bytes counted alike for SIFT, LoRA and full fine-tuning
state.py      save / load / merge / unmerge of the delta (safetensors indices + values, JSON config)
strategy.py   the registered `sift` strategy (HF Trainer: optimizer, callbacks, save, load)

Names are resolved on first use (PEP 562): importing sift.config (SiftOptions, which the CLI builds flags from)
must not load torch through this file.
"""

from __future__ import annotations

import importlib

# public name -> the submodule defining it
_EXPORTS: dict[str, str] = {
    "SiftConfig": "config", "num_selected": "config",
    "SiftAdamW": "optimizer", "optimizer_state_bytes": "optimizer",
    "SiftEngine": "sparse",
    "SiftDelta": "state", "load_delta": "state", "save_delta": "state",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value  # cache: the next read is a plain attribute
    return value
