"""Inflection layers: where attention saturates and the backward signal drops, as a contiguous band.

Formulas (METHODS.md section 1, [ours]):
- gradient decay step r_l = log(A_{l+1} / A_l): how much the backward signal shrinks on entering block l
  (A = activation gradient norm; the last block has no l+1, its r is set to the mean, i.e. z = 0);
- score_l = z(-H_l) + z(r_l), z = standardise across layers ((v - mean) / std; 0 when std = 0), H_l the attention
  entropy (low entropy = saturated attention = high score);
- the band: the contiguous run of w layers (default w = ceil(L / 4)) with the highest total score.
Layers are 0-based (the indices peft's `layers_to_transform` takes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tunescope.errors import UserError


@dataclass
class Selection:
    """The chosen band, the per-layer scores and a one-line reason."""

    layers: list[int]
    scores: list[float]
    decay: list[float]  # r_l, NaN for the last layer
    reason: str


def zscore(values: Sequence[float]) -> np.ndarray:
    """(v - mean) / std over the finite entries; non-finite entries and constant profiles give 0."""
    v = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(v)
    ok = np.isfinite(v)
    if ok.sum() >= 2:
        std = v[ok].std()
        if std > 0:
            out[ok] = (v[ok] - v[ok].mean()) / std
    return out


def gradient_decay(act_grad: Sequence[float]) -> list[float]:
    """r_l = log(A_{l+1} / A_l) for l < L-1 (0-based), NaN for the last layer or non-positive norms."""
    a = list(act_grad)
    out = []
    for i in range(len(a)):
        if i + 1 < len(a) and a[i] > 0 and a[i + 1] > 0 and math.isfinite(a[i]) and math.isfinite(a[i + 1]):
            out.append(math.log(a[i + 1] / a[i]))
        else:
            out.append(float("nan"))
    return out


def default_width(num_layers: int) -> int:
    return max(1, math.ceil(num_layers / 4))


def select_inflection_layers(attn_entropy: Sequence[float], act_grad: Sequence[float],
                             width: int | None = None) -> Selection:
    """The contiguous band of `width` layers maximising sum of z(-H_l) + z(r_l) (see module docstring)."""
    n = len(attn_entropy)
    if n == 0 or len(act_grad) != n:
        raise UserError(f"bad layer profiles of lengths {n} and {len(act_grad)}: expected equal, non-zero lengths")
    w = default_width(n) if width is None else int(width)
    if not 1 <= w <= n:
        raise UserError(f"bad value {width} for the inflection band width: expected 1..{n}")
    decay = gradient_decay(act_grad)
    neg_h = [-h for h in attn_entropy]
    scores = zscore(neg_h) + zscore(decay)
    totals = [float(scores[s:s + w].sum()) for s in range(n - w + 1)]
    start = int(np.argmax(totals))
    layers = list(range(start, start + w))
    mean_h = float(np.nanmean([attn_entropy[i] for i in layers])) if any(
        math.isfinite(attn_entropy[i]) for i in layers) else float("nan")
    finite_decay = [decay[i] for i in layers if math.isfinite(decay[i])]
    span = f"layer {layers[0]}" if w == 1 else f"layers {layers[0]}-{layers[-1]}"
    reason = (f"{span} of {n}: highest band score {totals[start]:.2f} (z(-entropy) + z(gradient decay)); "
              f"mean attention entropy {mean_h:.3f} vs {float(np.nanmean(attn_entropy)):.3f} overall, "
              f"mean decay step log(A_l+1/A_l) "
              f"{(sum(finite_decay) / len(finite_decay)) if finite_decay else float('nan'):.3f}")
    return Selection(layers=layers, scores=[float(s) for s in scores], decay=decay, reason=reason)
