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

Attention sink share (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks"):
S_l = mean over heads and valid query positions i of a_{i, j0(i)}, j0(i) the first key query i may attend to
(the first non-padding token; with a sliding window, the window's first key). Values in [0, 1]; 1/n for
uniform attention over n keys, near 1 when a layer parks its attention on the first token.

Both are attention statistics (`AttentionStatistic`): in a LayerCapture they share one `AttentionTap`, so
the probabilities are recomputed once per attention call and every statistic reads the same chunk.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from tunescope.diagnostics.capture import PassContext
from tunescope.diagnostics.metrics import Column, LayerRecorder, layer_metric
from tunescope.errors import UserError

_WRAPPED = ("sdpa", "eager")
_PREFIX = "tunescope|"
_SINK_ATTR = "_tunescope_entropy_sink"  # (recorder, layer) per attention module: a data sink, not an attention sink
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
    return entropy_sums(AttentionChunk.of(probs_or_scores, allowed, valid_queries, are_scores=are_scores))


@dataclass
class AttentionChunk:
    """The attention of a block of queries of one layer, in the form every attention statistic reads.

    log_probs: [B, H, Tq, Tk] log a_ij, normalised over the allowed keys (-inf at the others when built from
    scores); allowed: bool [B, H, Tq, Tk]; valid_queries: bool [B, Tq] or None (= all).
    Derived tensors are cached, so statistics sharing a chunk do not recompute them.
    """

    log_probs: torch.Tensor
    allowed: torch.Tensor
    valid_queries: torch.Tensor | None = None

    @classmethod
    def of(cls, probs_or_scores: torch.Tensor, allowed: torch.Tensor, valid_queries: torch.Tensor | None = None,
           *, are_scores: bool = False) -> AttentionChunk:
        """From probabilities, or from logits (`are_scores`: log a_ij = log_softmax over the allowed keys)."""
        x = probs_or_scores.float()
        allowed = allowed.expand_as(x)
        if are_scores:
            logp = torch.log_softmax(x.masked_fill(~allowed, float("-inf")), dim=-1)
        else:
            logp = torch.log(x.clamp_min(1e-38))  # 0 * log 0 must be 0, not NaN
        return cls(logp, allowed, valid_queries)

    @cached_property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    @cached_property
    def n_keys(self) -> torch.Tensor:
        """[B, H, Tq] number of allowed keys per query."""
        return self.allowed.sum(-1)

    @cached_property
    def rows(self) -> torch.Tensor:
        """bool [B, H, Tq]: the queries that count - valid, with at least one allowed key."""
        ok = self.n_keys > 0
        if self.valid_queries is not None:
            ok = ok & self.valid_queries[:, None, :].to(torch.bool)
        return ok


def entropy_sums(chunk: AttentionChunk) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sum_i H_i, count, sum_i H_i / log n_i, count_norm) over the counted queries i of the chunk.

    H_i = -sum_j a_ij log a_ij over allowed keys j; the normalised sum only over queries with n_i >= 2.
    """
    p, logp = chunk.probs, chunk.log_probs
    h = -torch.where(chunk.allowed, p * logp, torch.zeros((), dtype=logp.dtype)).sum(-1)  # [B, H, Tq]
    row_ok = chunk.rows
    norm_ok = row_ok & (chunk.n_keys >= 2)
    h_norm = h / torch.log(chunk.n_keys.clamp_min(2).to(h.dtype))
    return (
        h[row_ok].double().sum(),
        row_ok.sum().double(),
        h_norm[norm_ok].double().sum(),
        norm_ok.sum().double(),
    )


def sink_share_sums(chunk: AttentionChunk) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i a_{i, j0(i)}, count) over the counted queries i; j0(i) = the first key query i may attend to."""
    # argmax returns the first maximum, i.e. the first allowed key (rows with none are not counted).
    first = chunk.allowed.to(torch.uint8).argmax(dim=-1, keepdim=True)
    share = chunk.probs.gather(-1, first).squeeze(-1)  # [B, H, Tq]
    rows = chunk.rows
    return share[rows].double().sum(), rows.sum().double()


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


def attention_chunks(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float | None,
                     causal: bool, num_kv_groups: int,
                     valid_tokens: torch.Tensor | None, softcap: float | None = None) -> Iterator[AttentionChunk]:
    """The kernel's attention, recomputed from its inputs in chunks of queries (call under torch.no_grad()).

    a_ij = softmax over allowed keys j of (q_i . k_j * scaling + additive mask_ij): the logits the kernel used.
    query [B, Hq, Tq, D], key [B, Hkv, Tk, D]; mask bool or additive float [B|1, 1|H, Tq, Tk] or None;
    valid_tokens bool [B, Tq] marks the queries that count (ignored when its shape does not match).
    """
    q, k = query.detach(), key.detach()
    if num_kv_groups > 1 and k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(num_kv_groups, dim=1)
    tq, tk = q.shape[2], k.shape[2]
    if mask is None and causal and tq > 1 and tk > tq:
        k, tk = k[:, :, :tq], tq
    scale = scaling if scaling is not None else q.shape[-1] ** -0.5
    allowed = _allowed_keys(mask, tq, tk, causal, q.device)
    valid_q = None
    if valid_tokens is not None and valid_tokens.shape == (q.shape[0], tq):
        valid_q = valid_tokens.to(q.device)
    for s in range(0, tq, _QUERY_CHUNK):
        e = min(s + _QUERY_CHUNK, tq)
        scores = torch.matmul(q[:, :, s:e].float(), k.float().transpose(-1, -2)) * scale
        if softcap:  # logit soft-capping (Gemma 2), applied by the kernel before the mask
            scores = torch.tanh(scores / softcap) * softcap
        if mask is not None and mask.dtype != torch.bool:
            scores = scores + mask[..., s:e, :].float()  # keep relative biases of additive masks
        yield AttentionChunk.of(scores, allowed[..., s:e, :], None if valid_q is None else valid_q[:, s:e],
                                are_scores=True)


class AttentionStatistic(LayerRecorder):
    """A per-layer metric computed from the attention probabilities, chunk by chunk (`accumulate`).

    In a LayerCapture it joins the pass's shared AttentionTap (`attach`), so all statistics read the same
    chunks. Alone, pass it to `record_attention_entropy(model, attentions, stat)`: the wrapper calls `add`,
    which uses the statistic's own `valid_tokens`.
    """

    valid_tokens: torch.Tensor | None = None

    def accumulate(self, layer: int, chunk: AttentionChunk) -> None:
        raise NotImplementedError

    def add(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
            scaling: float | None, causal: bool, num_kv_groups: int, softcap: float | None = None) -> None:
        """query [B, Hq, Tq, D], key [B, Hkv, Tk, D]; mask bool or additive float [B|1, 1|H, Tq, Tk] or None."""
        with torch.no_grad():
            for chunk in attention_chunks(query, key, mask, scaling, causal, num_kv_groups, self.valid_tokens,
                                          softcap):
                self.accumulate(layer, chunk)

    def attach(self, ctx: PassContext) -> None:
        attention_tap(ctx).statistics.append(self)

    def set_batch(self, valid_tokens: torch.Tensor | None) -> None:
        self.valid_tokens = valid_tokens


@layer_metric("attn_entropy", label="attention entropy H_l", unit="nats", bounds=(0.0, float("inf")), order=10,
              description="H_l = mean over heads and valid queries i of -sum_j a_ij log a_ij over valid keys j "
                          "(decoders: j <= i)",
              extra_columns=[Column("attn_entropy_norm", "normalised entropy H_l / log n", bounds=(0.0, 1.0),
                                    description="mean of H_i / log(n_valid_keys_i); queries with one valid key "
                                                "left out")])
@dataclass
class EntropyRecorder(AttentionStatistic):
    """Accumulates per-layer entropy sums across calls (probe batches); `valid_tokens` [B, T] is set per batch."""

    num_layers: int
    valid_tokens: torch.Tensor | None = None
    sums: list[list[float]] = field(default_factory=list)  # per layer: [sum_H, n, sum_H_norm, n_norm]

    def __post_init__(self):
        self.sums = [[0.0, 0.0, 0.0, 0.0] for _ in range(self.num_layers)]

    def accumulate(self, layer: int, chunk: AttentionChunk) -> None:
        acc = self.sums[layer]
        for i, v in enumerate(entropy_sums(chunk)):
            acc[i] += float(v)

    def table(self) -> list[dict[str, float]]:
        """Per layer: {"attn_entropy": H_l, "attn_entropy_norm": H_l / log n averaged}; NaN when nothing was seen."""
        out = []
        for s_h, n, s_hn, n_n in self.sums:
            out.append({"attn_entropy": s_h / n if n else float("nan"),
                        "attn_entropy_norm": s_hn / n_n if n_n else float("nan")})
        return out


@layer_metric("attn_sink_share", label="attention sink share S_l", bounds=(0.0, 1.0), order=20,
              description="S_l = mean over heads and valid queries i of a_{i,j0}, j0 the first key i may attend "
                          "to (the first real token; Xiao et al. 2023)")
@dataclass
class SinkShareRecorder(AttentionStatistic):
    """S_l = (sum over heads and valid queries i of a_{i, j0(i)}) / (their number), accumulated over batches."""

    num_layers: int
    valid_tokens: torch.Tensor | None = None
    sums: list[list[float]] = field(default_factory=list)  # per layer: [sum_S, n]

    def __post_init__(self):
        self.sums = [[0.0, 0.0] for _ in range(self.num_layers)]

    def accumulate(self, layer: int, chunk: AttentionChunk) -> None:
        acc = self.sums[layer]
        for i, v in enumerate(sink_share_sums(chunk)):
            acc[i] += float(v)

    def table(self) -> list[dict[str, float]]:
        """Per layer: {"attn_sink_share": S_l}; NaN when nothing was seen."""
        return [{"attn_sink_share": s / n if n else float("nan")} for s, n in self.sums]


class AttentionTap:
    """The one consumer the attention wrapper calls during a LayerCapture pass.

    It recomputes each chunk of probabilities once and hands it to every attention statistic of the pass,
    so recording the sink share next to the entropy costs one gather, not a second softmax.
    """

    def __init__(self, ctx: PassContext) -> None:
        self.ctx = ctx
        self.statistics: list[AttentionStatistic] = []

    def add(self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
            scaling: float | None, causal: bool, num_kv_groups: int, softcap: float | None = None) -> None:
        with torch.no_grad():
            for chunk in attention_chunks(query, key, mask, scaling, causal, num_kv_groups, self.ctx.valid_tokens,
                                          softcap):
                for stat in self.statistics:
                    stat.accumulate(layer, chunk)


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
                         int(getattr(module, "num_key_value_groups", 1) or 1), softcap=kwargs.get("softcap"))
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
                             recorder: AttentionStatistic | AttentionTap
                             ) -> Iterator[AttentionStatistic | AttentionTap]:
    """Within the block, every forward of `model` adds the attention entropy of each layer to `recorder`.

    recorder: an EntropyRecorder (or any AttentionStatistic, or the AttentionTap of a LayerCapture pass).
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


_TAP = "attention"  # key of the pass's AttentionTap in PassContext.shared


def attention_tap(ctx: PassContext) -> AttentionTap:
    """The pass's AttentionTap, created and wired into the model's attention on first use."""
    tap = ctx.shared.get(_TAP)
    if tap is None:
        tap = ctx.shared[_TAP] = AttentionTap(ctx)
        ctx.stack.enter_context(record_attention_entropy(ctx.model, ctx.layout.attentions, tap))
    return tap
