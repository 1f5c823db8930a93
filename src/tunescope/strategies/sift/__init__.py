"""SIFT, sparse increment fine-tuning (Song et al., ICML 2024, arXiv 2312.11875), done right.

config.py     options, k = floor(rate * numel) + 1, default targets (attention q,k,v,o)
mask.py       top-k |accumulated gradient| / random mask
sparse.py     SiftEngine: per-tensor k-vectors fed by post-accumulate-grad hooks that free dense grads
optimizer.py  SiftAdamW: fp32 AdamW over k-vectors + head, decoupled decay on real entries, exact steps
state.py      save / load / merge / unmerge of the delta (safetensors indices + values, JSON config)
strategy.py   the registered `sift` strategy (HF Trainer: optimizer, callbacks, save, load)
"""

from tunescope.strategies.sift.config import SiftConfig, num_selected
from tunescope.strategies.sift.optimizer import SiftAdamW, optimizer_state_bytes
from tunescope.strategies.sift.sparse import SiftEngine
from tunescope.strategies.sift.state import SiftDelta, load_delta, save_delta

__all__ = ["SiftConfig", "SiftEngine", "SiftAdamW", "SiftDelta", "load_delta", "save_delta", "num_selected",
           "optimizer_state_bytes"]
