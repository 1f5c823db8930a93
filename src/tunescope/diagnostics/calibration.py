"""Calibration of a classifier from its logits: ECE, MCE, NLL, Brier, and temperature scaling.

Public entry point: `calibration_report(test_logits, test_labels, val_logits=None, val_labels=None)`.
Everything works on numpy arrays `logits [N, C]` (float) and `labels [N]` (int), so it applies to saved
logits as well as to a live model (tunescope calibrate RUN_DIR uses the saved ones).

Conventions (Tomihari & Sato 2024, following Guo et al. 2017):
- confidence of a prediction = max_c softmax(z)_c, the prediction = argmax_c z_c;
- 15 equal-width confidence bins on [0, 1]; bin b holds predictions with confidence in (b/15, (b+1)/15]
  (the first bin also holds confidence exactly 0, which cannot occur for C >= 1 but keeps the cover total).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from tunescope.errors import UserError

DEFAULT_BINS = 15


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise UserError(f"bad shapes logits {logits.shape} / labels {labels.shape} for calibration: "
                        "expected logits [N, C] and labels [N] with the same N")
    if logits.shape[0] == 0:
        raise UserError("bad value 0 examples for calibration: expected at least one example")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise UserError(f"bad label range [{labels.min()}, {labels.max()}] for calibration: "
                        f"expected labels in [0, {logits.shape[1] - 1}]")
    return logits, labels


@dataclass
class ReliabilityBins:
    """Per-bin statistics of a reliability diagram (arrays of length n_bins)."""

    edges: list[float]  # n_bins + 1 bin edges
    count: list[int]
    accuracy: list[float | None]  # None for empty bins
    confidence: list[float | None]


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> ReliabilityBins:
    """Bin predictions by confidence into `n_bins` equal-width bins on [0, 1].

    probs [N, C] (rows sum to 1), labels [N]. For each bin b: count n_b, accuracy acc_b = mean of
    1[argmax p = y] and mean confidence conf_b = mean of max_c p_c over the predictions in the bin.
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins (lo, hi]; searchsorted(side="left") on the upper edges gives exactly that.
    idx = np.clip(np.searchsorted(edges[1:], conf, side="left"), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
        cf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
    return ReliabilityBins(
        edges=edges.tolist(),
        count=count.astype(int).tolist(),
        accuracy=[None if np.isnan(a) else float(a) for a in acc],
        confidence=[None if np.isnan(c) else float(c) for c in cf],
    )


def ece_mce(probs: np.ndarray, labels: np.ndarray, n_bins: int = DEFAULT_BINS) -> tuple[float, float]:
    """Expected and maximum calibration error with `n_bins` equal-width confidence bins.

    ECE = sum over bins b of (n_b / N) * |acc_b - conf_b|;  MCE = max over non-empty bins of |acc_b - conf_b|,
    where acc_b is the accuracy and conf_b the mean confidence (max softmax probability) in bin b.
    """
    bins = reliability_bins(probs, labels, n_bins)
    n = len(labels)
    ece, mce = 0.0, 0.0
    for c, a, f in zip(bins.count, bins.accuracy, bins.confidence):
        if c == 0:
            continue
        gap = abs(a - f)
        ece += c / n * gap
        mce = max(mce, gap)
    return float(ece), float(mce)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood: NLL = -(1/N) sum_i log softmax(z_i / T)_{y_i}."""
    logp = log_softmax(logits / temperature, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: (1/N) sum_i sum_c (p_ic - 1[y_i = c])^2 (0 is perfect, 2 the worst)."""
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (-5.0, 5.0)) -> float:
    """Temperature scaling: the single T > 0 minimising the validation NLL of softmax(z / T).

    Optimised over log T (so T stays positive) with scipy's bounded scalar minimiser on
    log T in `bounds` (T in [e^-5, e^5]); NLL(T) is smooth and, for fixed logits, unimodal in log T.
    """
    logits, labels = _check(logits, labels)
    res = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=bounds,
                          method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0,
                        n_bins: int = DEFAULT_BINS) -> dict:
    """accuracy, nll, brier, ece, mce of softmax(logits / temperature) against `labels`."""
    logits, labels = _check(logits, labels)
    probs = softmax(logits / temperature, axis=1)
    ece, mce = ece_mce(probs, labels, n_bins)
    return {
        "accuracy": float((logits.argmax(axis=1) == labels).mean()),
        "nll": nll(logits, labels, temperature),
        "brier": brier(probs, labels),
        "ece": ece,
        "mce": mce,
    }


def calibration_report(test_logits: np.ndarray, test_labels: np.ndarray, val_logits: np.ndarray | None = None,
                       val_labels: np.ndarray | None = None, n_bins: int = DEFAULT_BINS) -> dict:
    """Calibration of test predictions before and after temperature scaling fitted on validation.

    Returns {accuracy, nll, brier, ece, mce, temperature, nll_after_ts, brier_after_ts, ece_after_ts,
    mce_after_ts, n_bins, reliability, reliability_after_ts}. Without validation logits no temperature
    is fitted and the *_after_ts keys are absent. Temperature scaling never changes the argmax, so the
    accuracy is the same before and after.
    """
    test_logits, test_labels = _check(test_logits, test_labels)
    out = calibration_metrics(test_logits, test_labels, 1.0, n_bins)
    out["n_bins"] = n_bins
    out["reliability"] = asdict(reliability_bins(softmax(test_logits, axis=1), test_labels, n_bins))
    if val_logits is not None and val_labels is not None and len(val_labels) > 0:
        t = fit_temperature(val_logits, val_labels)
        after = calibration_metrics(test_logits, test_labels, t, n_bins)
        out["temperature"] = t
        for key in ("nll", "brier", "ece", "mce"):
            out[f"{key}_after_ts"] = after[key]
        out["reliability_after_ts"] = asdict(reliability_bins(softmax(test_logits / t, axis=1), test_labels, n_bins))
    return out
