"""ECE / MCE / NLL / Brier and temperature scaling against hand computations and planted truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from tunescope.diagnostics.calibration import (
    brier,
    calibration_metrics,
    calibration_report,
    ece_mce,
    fit_temperature,
    reliability_bins,
)
from tunescope.errors import UserError


def _binary_logits(conf: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Logits whose softmax gives probability `conf` to class `predicted` (conf > 0.5)."""
    margin = np.log(conf / (1 - conf))
    logits = np.zeros((len(conf), 2))
    logits[np.arange(len(conf)), predicted] = margin
    return logits


def test_perfectly_calibrated_predictions_have_zero_ece():
    # In every bin the fraction correct equals the confidence exactly: 0.6 -> 6/10, 0.8 -> 8/10, 0.95 -> 19/20.
    conf, correct = [], []
    for c, n in ((0.6, 10), (0.8, 10), (0.95, 20)):
        k = round(c * n)
        conf += [c] * n
        correct += [1] * k + [0] * (n - k)
    conf, correct = np.array(conf), np.array(correct)
    predicted = np.arange(len(conf)) % 2
    labels = np.where(correct == 1, predicted, 1 - predicted)
    ece, mce = ece_mce(softmax(_binary_logits(conf, predicted), axis=1), labels)
    assert ece == pytest.approx(0.0, abs=1e-12)
    assert mce == pytest.approx(0.0, abs=1e-12)


def test_sampled_calibrated_predictions_have_near_zero_ece():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=2.0, size=(200_000, 3))
    probs = softmax(logits, axis=1)
    labels = (rng.random(len(probs))[:, None] > probs.cumsum(axis=1)).sum(axis=1)  # y ~ Categorical(p)
    assert calibration_metrics(logits, labels)["ece"] < 0.005


def test_planted_miscalibration_equals_hand_computation():
    # Two predictions at confidence 0.95 (one right) -> bin (14/15, 1]: |0.5 - 0.95| = 0.45.
    # Two at 0.65 (both right)                         -> bin (9/15, 10/15]: |1.0 - 0.65| = 0.35.
    conf = np.array([0.95, 0.95, 0.65, 0.65])
    predicted = np.array([1, 0, 1, 1])
    labels = np.array([1, 1, 1, 1])
    logits = _binary_logits(conf, predicted)
    m = calibration_metrics(logits, labels)
    assert m["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.35)
    assert m["mce"] == pytest.approx(0.45)
    assert m["accuracy"] == pytest.approx(0.75)
    nll = -(np.log(0.95) + np.log(0.05) + 2 * np.log(0.65)) / 4
    assert m["nll"] == pytest.approx(nll)
    br = (2 * 0.05**2 + 2 * 0.95**2 + 4 * 0.35**2) / 4  # (p1 - y1)^2 + (p0 - y0)^2 per example
    assert m["brier"] == pytest.approx(br)
    bins = reliability_bins(softmax(logits, axis=1), labels)
    assert bins.count[14] == 2 and bins.count[9] == 2 and sum(bins.count) == 4
    assert bins.accuracy[9] == 1.0 and bins.confidence[14] == pytest.approx(0.95)


@pytest.mark.parametrize("planted", [0.5, 2.5])
def test_temperature_scaling_recovers_planted_temperature(planted):
    rng = np.random.default_rng(1)
    true_logits = rng.normal(scale=1.5, size=(40_000, 4))
    probs = softmax(true_logits, axis=1)
    labels = (rng.random(len(probs))[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    model_logits = true_logits * planted  # softmax(model / planted) is the true distribution
    t = fit_temperature(model_logits, labels)
    assert t == pytest.approx(planted, rel=0.02)


def test_report_keys_and_ts_reduces_ece_of_overconfident_model():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(scale=1.0, size=(6000, 2))
    probs = softmax(true_logits, axis=1)
    labels = (rng.random(len(probs))[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    logits = 4.0 * true_logits
    rep = calibration_report(logits[3000:], labels[3000:], logits[:3000], labels[:3000])
    for key in ("accuracy", "nll", "brier", "ece", "mce", "temperature", "ece_after_ts", "nll_after_ts",
                "mce_after_ts", "brier_after_ts", "reliability", "reliability_after_ts"):
        assert key in rep
    assert rep["ece_after_ts"] < rep["ece"] / 3
    assert rep["nll_after_ts"] < rep["nll"]
    assert rep["temperature"] == pytest.approx(4.0, rel=0.1)


def test_brier_bounds_and_bad_input():
    assert brier(np.array([[1.0, 0.0]]), np.array([0])) == 0.0
    assert brier(np.array([[0.0, 1.0]]), np.array([0])) == 2.0
    with pytest.raises(UserError):
        calibration_metrics(np.zeros((3, 2)), np.array([0, 1]))
    with pytest.raises(UserError):
        calibration_metrics(np.zeros((2, 2)), np.array([0, 2]))
