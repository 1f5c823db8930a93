"""The final-layer jump: displacement Psi_l of the residual stream per block, jump rate zeta_l and J.

METHODS.md section 3 (arXiv 2601.18302). Everything is computed from the hidden states of ONE forward
pass: forward hooks on the transformer blocks see h_{l-1} and h_l as the pass runs, so no extra pass and
no copy of all hidden states is kept (only the previous layer's state, which the model holds anyway).

Why hooks and not `output_hidden_states`: for GPT-2 and Llama, HF applies the final norm to the last
entry of `hidden_states`, while the jump is defined on the residual stream *before* the final norm.
h_0 is the input of block 0 (forward pre-hook), which is the embedding output for every architecture.

The same capture runs in differentiable mode for the JREG regulariser (training/regularizers.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tunescope.models.layers import model_layout, unwrap


def token_displacement(prev: Tensor, cur: Tensor) -> Tensor:
    """Per-token displacement psi = (1 - cos(prev, cur)) / 2, in [0, 1].

    prev, cur: [B, T, d] (or [..., d]) residual-stream states of consecutive layers -> [B, T].
    Computed in at least fp32 (the cosine of bf16 states loses the small displacements of middle layers).
    0 when the state does not change direction, 1 when it flips to the opposite direction.
    """
    if prev.dtype in (torch.float16, torch.bfloat16):
        prev, cur = prev.float(), cur.float()
    cos = F.cosine_similarity(prev, cur, dim=-1, eps=1e-8)
    return (1.0 - cos) / 2.0


def masked_sum(values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(sum of `values` over valid tokens, number of valid tokens). values [B, T]; mask [B, T] of 0/1 or None."""
    if mask is None:
        return values.sum(), torch.tensor(float(values.numel()), device=values.device)
    valid = mask.bool()
    # where, not a product: a padded position may hold NaN (e.g. a zero pad embedding) and NaN * 0 = NaN.
    return torch.where(valid, values, torch.zeros_like(values)).sum(), valid.sum().to(values.dtype)


def zeta_profile(psi: Sequence[float]) -> list[float]:
    """Jump rate zeta_l = 100 * sum_{k=l..L} max(0, Psi_k - Psi_{k-1}) for l = 1..L.

    psi: [Psi_1, ..., Psi_L]. The sum needs Psi_{k-1}, so k starts at 2: the k = 1 term (Psi_0 is not
    a displacement) counts as 0, which makes zeta_1 = zeta_2. zeta_L = 100 * max(0, Psi_L - Psi_{L-1})
    is the final-layer jump; zeta_1 is the total upward movement of the profile.
    """
    n = len(psi)
    out = [0.0] * n
    running = 0.0
    for k in range(n - 1, -1, -1):  # k is 0-based: layer k + 1
        if k >= 1:
            running += max(0.0, float(psi[k]) - float(psi[k - 1]))
        out[k] = 100.0 * running
    return out


def jump_ratio(psi: Sequence[float]) -> float:
    """J = Psi_L / mean(Psi_1 .. Psi_{L-1}): how many times the last block moves the state more than an
    average earlier block. NaN for a one-block model or when the earlier blocks do not move at all."""
    if len(psi) < 2:
        return float("nan")
    earlier = sum(float(p) for p in psi[:-1]) / (len(psi) - 1)
    return float(psi[-1]) / earlier if earlier > 0 else float("nan")


@dataclass
class JumpProfile:
    """Psi_l, zeta_l (l = 1..L) and J of one model on one text set; `tokens` = valid tokens averaged over."""

    psi: list[float]
    zeta: list[float]
    J: float
    tokens: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_psi(cls, psi: Sequence[float], tokens: int) -> JumpProfile:
        psi = [float(p) for p in psi]
        return cls(psi=psi, zeta=zeta_profile(psi), J=jump_ratio(psi), tokens=int(tokens))

    @property
    def zeta_last(self) -> float:
        return self.zeta[-1] if self.zeta else float("nan")

    def as_dict(self) -> dict:
        """The results.json `jump` block: psi[], zeta[], J (+ zeta_L and tokens for convenience)."""
        return {"psi": self.psi, "zeta": self.zeta, "J": self.J, "zeta_L": self.zeta_last,
                "tokens": self.tokens, **self.extra}


class DisplacementCapture:
    """Forward hooks that compute the per-layer displacement of the current batch while the model runs.

    Usage::

        with DisplacementCapture(model) as cap:
            cap.set_mask(batch["attention_mask"])
            model(**batch)
            cap.batch_psi()   # Tensor [L]: masked mean Psi_l of this batch

    Non-differentiable mode (default) detaches states and accumulates token-weighted sums over batches
    (`profile()` gives the text-set average). `differentiable=True` keeps the graph so a loss on
    `batch_psi()` back-propagates into the model (JREG). Hooks are removed in `__exit__` (also on errors).
    """

    def __init__(self, model: nn.Module, *, differentiable: bool = False):
        self.layout = model_layout(model)
        self.differentiable = differentiable
        self.num_layers = self.layout.num_layers
        self._handles: list = []
        self._mask: Tensor | None = None
        self._prev: Tensor | None = None
        self._batch_sums: list[Tensor | None] = [None] * self.num_layers
        self._batch_count: Tensor | None = None
        self.total_sums = torch.zeros(self.num_layers, dtype=torch.float64)
        self.total_tokens = 0.0

    # -- hooks -----------------------------------------------------------------------------
    def set_mask(self, mask: Tensor | None) -> None:
        """Valid-token mask [B, T] (1 = real token) of the batch about to run; None = all tokens valid."""
        self._mask = mask
        self._batch_sums = [None] * self.num_layers
        self._batch_count = None

    def _state(self, x: Tensor) -> Tensor:
        return x if self.differentiable else x.detach()

    def _pre_hook(self, module, args, kwargs):
        h0 = args[0] if args else kwargs["hidden_states"]
        self._prev = self._state(h0)

    def _make_post_hook(self, index: int):
        def hook(module, args, output):
            cur = output if torch.is_tensor(output) else output[0]
            cur = self._state(cur)
            if self._prev is None:  # a block ran without block 0 (should not happen): skip safely
                self._prev = cur
                return
            mask = self._mask
            if mask is not None and mask.shape != cur.shape[:-1]:
                mask = None  # e.g. a cache-extended sequence: fall back to all tokens
            total, count = masked_sum(token_displacement(self._prev, cur), mask)
            self._batch_sums[index] = total
            self._batch_count = count
            self._prev = cur
        return hook

    def __enter__(self) -> DisplacementCapture:
        self._handles.append(self.layout.blocks[0].register_forward_pre_hook(self._pre_hook, with_kwargs=True))
        for i, block in enumerate(self.layout.blocks):
            self._handles.append(block.register_forward_hook(self._make_post_hook(i)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._prev = None

    # -- results ---------------------------------------------------------------------------
    def batch_psi(self) -> Tensor:
        """Masked mean Psi_l of the last batch, Tensor [L] (differentiable in differentiable mode)."""
        if self._batch_count is None or any(s is None for s in self._batch_sums):
            raise RuntimeError("DisplacementCapture: no complete forward pass was captured")
        count = self._batch_count.clamp_min(1.0)
        return torch.stack(self._batch_sums) / count

    def accumulate(self) -> None:
        """Add the last batch to the text-set totals (token-weighted)."""
        if self._batch_count is None:
            raise RuntimeError("DisplacementCapture: no complete forward pass was captured")
        sums = torch.stack([s.detach() for s in self._batch_sums]).double().cpu()
        self.total_sums += sums
        self.total_tokens += float(self._batch_count)
        self._prev = None

    def profile(self) -> JumpProfile:
        """The text-set profile: Psi_l = sum over all valid tokens of psi / number of valid tokens."""
        if self.total_tokens <= 0:
            raise RuntimeError("DisplacementCapture: no tokens accumulated")
        return JumpProfile.from_psi((self.total_sums / self.total_tokens).tolist(), int(self.total_tokens))


def trunk(model: nn.Module) -> nn.Module:
    """The transformer without its task head (BertModel, LlamaModel ...): the jump needs only the blocks,
    so measuring skips the LM head / classifier (for a 49k-token vocabulary that is ~20% of a forward)."""
    task = unwrap(model)
    base = getattr(task, "base_model", None)
    return base if isinstance(base, nn.Module) else task


_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@torch.inference_mode()
def jump_profile(model: nn.Module, batches: Iterable[Mapping[str, Tensor]], *, head: bool = False) -> JumpProfile:
    """Psi_l, zeta_l and J of `model`, averaged over the valid tokens of all `batches` (one forward each).

    batches: dicts with input_ids [B, T] and attention_mask [B, T] (+ token_type_ids); other keys
    (labels ...) are ignored. head=False runs only the transformer trunk (same hidden states, cheaper).
    """
    was_training = model.training
    model.eval()
    runner = model if head else trunk(model)
    device = next(model.parameters()).device
    try:
        with DisplacementCapture(model) as cap:
            for batch in batches:
                inputs = {k: v.to(device) for k, v in batch.items() if k in _MODEL_INPUTS}
                cap.set_mask(inputs.get("attention_mask"))
                runner(**inputs)
                cap.accumulate()
            return cap.profile()
    finally:
        model.train(was_training)
