"""Attention entropy recorded while the model keeps its own attention kernel (SDPA by default).

How: transformers looks up the attention function by name (`config._attn_implementation`) in its
`AttentionInterface`. We register a wrapper under "tunescope|sdpa" (and "tunescope|eager") that
calls the original function for the output - so the model's numbers and kernel are unchanged - and,
in the same call, computes the masked entropy from q, k and the mask on detached copies (no autograd
graph, so nothing is kept for backward). `record_attention_entropy(model)` switches the name only
for the duration of the `with` block and restores it in `finally`.

Formula (METHODS.md section 1, [ours]): H_l = mean over heads and valid query positions i of
-sum_j a_ij log a_ij, the sum over valid keys j (padding and, for decoders, future positions excluded);
the normalised entropy is H_i / log(n_valid_keys_i) in [0, 1] (queries with a single valid key, where
log 1 = 0, are left out of the normalised mean).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from tunescope.errors import UserError

_WRAPPED = ("sdpa", "eager")
_PREFIX = "tunescope|"
_SINK_ATTR = "_tunescope_entropy_sink"
_QUERY_CHUNK = 256  # queries per chunk: bounds the B x H x chunk x T score buffer


def masked_attention_entropy(
    probs_or_scores: torch.Tensor,
    allowed: torch.Tensor,
    valid_queries: torch.Tensor | None = None,
    *,
    are_scores: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums of per-query attention entropies over valid queries.

    Entropy of query i: H_i = -sum_j a_ij log a_ij over the allowed keys j; normalised: H_i / log(n_i)
    with n_i the number of allowed keys (only for n_i >= 2).

    probs_or_scores: [B, H, Tq, Tk] attention probabilities, or raw logits when `are_scores`
    (softmax taken over the allowed keys). allowed: bool, broadcastable to [B, H, Tq, Tk].
    valid_queries: bool [B, Tq] (None = all). Returns (sum_H, count, sum_H_norm, count_norm), float64 scalars.
    """
    x = probs_or_scores.float()
    allowed = allowed.expand_as(x)
    if are_scores:
        logp = torch.log_softmax(x.masked_fill(~allowed, float("-inf")), dim=-1)
    else:
        logp = torch.log(x.clamp_min(1e-38))
    p = logp.exp()
    h = -torch.where(allowed, p * logp, torch.zeros((), dtype=x.dtype)).sum(-1)  # [B, H, Tq]
    n_keys = allowed.sum(-1)  # [B, H, Tq]
    row_ok = n_keys > 0
    if valid_queries is not None:
        row_ok = row_ok & valid_queries[:, None, :].to(torch.bool)
    norm_ok = row_ok & (n_keys >= 2)
    h_norm = h / torch.log(n_keys.clamp_min(2).to(h.dtype))
    return (
        h[row_ok].double().sum(),
        row_ok.sum().double(),
        h_norm[norm_ok].double().sum(),
        norm_ok.sum().double(),
    )


def _allowed_keys(mask: torch.Tensor | None, tq: int, tk: int, causal: bool, device) -> torch.Tensor:
    """bool [.., Tq, Tk] of keys each query may attend to, from the mask the kernel received."""
    if mask is None:
        if causal and tq > 1:
            # SDPA's is_causal aligns top-left; with Tk > Tq the wrapper crops keys to Tq first.
            return torch.ones(tq, tk, dtype=torch.bool, device=device).tril()[None, None]
        return torch.ones(1, 1, tq, tk, dtype=torch.bool, device=device)
    if mask.dtype == torch.bool:
        return mask
    # Additive float mask (eager / sdpa with custom masks): blocked positions hold dtype.min or -inf.
    return mask > torch.finfo(mask.dtype).min / 2


@dataclass
class EntropyRecorder:
    """Accumulates per-layer entropy sums across calls (probe batches); `valid_tokens` [B, T] is set per batch."""

    num_layers: int
    valid_tokens: torch.Tensor | None = None
    sums: list[list[float]] = field(default_factory=list)  # per layer: [sum_H, n, sum_H_norm, n_norm]

    def __post_init__(self):
        self.sums = [[0.0, 0.0, 0.0, 0.0] for _ in range(self.num_layers)]

    def add(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
            scaling: float | None, causal: bool, num_kv_groups: int) -> None:
        """query [B, Hq, Tq, D], key [B, Hkv, Tk, D]; mask bool or additive float [B|1, 1|H, Tq, Tk] or None."""
        with torch.no_grad():
            q, k = query.detach(), key.detach()
            if num_kv_groups > 1 and k.shape[1] != q.shape[1]:
                k = k.repeat_interleave(num_kv_groups, dim=1)
            tq, tk = q.shape[2], k.shape[2]
            if mask is None and causal and tq > 1 and tk > tq:
                k, tk = k[:, :, :tq], tq
            scale = scaling if scaling is not None else q.shape[-1] ** -0.5
            allowed = _allowed_keys(mask, tq, tk, causal, q.device)
            valid_q = None
            if self.valid_tokens is not None and self.valid_tokens.shape == (q.shape[0], tq):
                valid_q = self.valid_tokens.to(q.device)
            acc = self.sums[layer]
            for s in range(0, tq, _QUERY_CHUNK):
                e = min(s + _QUERY_CHUNK, tq)
                scores = torch.matmul(q[:, :, s:e].float(), k.float().transpose(-1, -2)) * scale
                if mask is not None and mask.dtype != torch.bool:
                    scores = scores + mask[..., s:e, :].float()  # keep relative biases of additive masks
                part = masked_attention_entropy(
                    scores, allowed[..., s:e, :], None if valid_q is None else valid_q[:, s:e], are_scores=True)
                for i, v in enumerate(part):
                    acc[i] += float(v)

    def table(self) -> list[dict[str, float]]:
        """Per layer: {"attn_entropy": H_l, "attn_entropy_norm": H_l / log n averaged}; NaN when nothing was seen."""
        out = []
        for s_h, n, s_hn, n_n in self.sums:
            out.append({"attn_entropy": s_h / n if n else float("nan"),
                        "attn_entropy_norm": s_hn / n_n if n_n else float("nan")})
        return out


def _inner_function(module: nn.Module, original: str):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if original == "eager":
        # Each modeling file defines its own eager function; use the one of this module's architecture.
        return getattr(sys.modules[type(module).__module__], "eager_attention_forward")
    return ALL_ATTENTION_FUNCTIONS[original]


def _make_wrapper(original: str):
    def tunescope_attention(module, query, key, value, attention_mask, *args, **kwargs):
        """Calls the original attention function; additionally records the entropy when a sink is attached."""
        out = _inner_function(module, original)(module, query, key, value, attention_mask, *args, **kwargs)
        sink = getattr(module, _SINK_ATTR, None)
        if sink is not None:
            recorder, layer = sink
            is_causal = kwargs.get("is_causal")
            causal = bool(is_causal if is_causal is not None else getattr(module, "is_causal", False))
            recorder.add(layer, query, key, attention_mask, kwargs.get("scaling"), causal,
                         int(getattr(module, "num_key_value_groups", 1) or 1))
        return out

    return tunescope_attention


def register_attention_functions() -> None:
    """Register "tunescope|sdpa" and "tunescope|eager" with transformers (idempotent)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

    for original in _WRAPPED:
        name = _PREFIX + original
        if name not in ALL_ATTENTION_FUNCTIONS._global_mapping:
            AttentionInterface.register(name, _make_wrapper(original))
        if name not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
            # The same mask format as the wrapped kernel expects (bool for sdpa, additive float for eager).
            ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])


@contextmanager
def record_attention_entropy(model: nn.Module, attentions: list[nn.Module],
                             recorder: EntropyRecorder) -> Iterator[EntropyRecorder]:
    """Within the block, every forward of `model` adds the attention entropy of each layer to `recorder`.

    attentions: the self-attention modules in layer order (`model_layout(model).attentions`).
    The model keeps its attention kernel; its config name is restored and the sinks removed on exit.
    """
    register_attention_functions()
    configs: dict[int, tuple[object, str]] = {}
    for i, attn in enumerate(attentions):
        cfg = getattr(attn, "config", None)
        name = getattr(cfg, "_attn_implementation", None)
        if cfg is None or name is None:
            raise UserError(f"attention entropy needs HF attention modules with a config; layer {i} has none")
        base = name[len(_PREFIX):] if name.startswith(_PREFIX) else name
        if base not in _WRAPPED:
            raise UserError(f"bad attention implementation {name!r} for attention entropy: expected one of "
                            f"{', '.join(_WRAPPED)}")
        configs.setdefault(id(cfg), (cfg, name))
    previous = [getattr(attn, _SINK_ATTR, None) for attn in attentions]  # an enclosing recorder, if nested
    try:
        for cfg, name in configs.values():
            if not name.startswith(_PREFIX):
                cfg._attn_implementation = _PREFIX + name
        for i, attn in enumerate(attentions):
            setattr(attn, _SINK_ATTR, (recorder, i))
        yield recorder
    finally:
        for attn, old in zip(attentions, previous):
            if old is not None:
                setattr(attn, _SINK_ATTR, old)
            elif hasattr(attn, _SINK_ATTR):
                delattr(attn, _SINK_ATTR)
        for cfg, name in configs.values():
            cfg._attn_implementation = name
