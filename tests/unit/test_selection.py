"""Inflection-layer selection finds a planted band in synthetic profiles."""

import math

import numpy as np
import pytest

from tunescope.diagnostics.selection import (
    gradient_decay,
    select_inflection_layers,
    zscore,
)
from tunescope.errors import UserError


def _planted(num_layers, start, width, rng):
    """Entropy low inside the band; activation gradient shrinking sharply on entering each band layer."""
    entropy = 2.0 + 0.05 * rng.normal(size=num_layers)
    entropy[start:start + width] -= 1.0
    log_a = np.cumsum(0.05 * rng.normal(size=num_layers))
    for l_ in range(start, start + width):  # r_l = log A_{l+1} - log A_l large for l in the band
        log_a[l_ + 1:] += 2.0
    return entropy.tolist(), np.exp(log_a).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_planted_band_is_found(seed):
    rng = np.random.default_rng(seed)
    num_layers = 12
    start = int(rng.integers(0, num_layers - 3))
    entropy, act = _planted(num_layers, start, 3, rng)
    sel = select_inflection_layers(entropy, act)
    assert sel.layers == [start, start + 1, start + 2]
    assert f"layers {start}-{start + 2}" in sel.reason and "\n" not in sel.reason


def test_decay_and_zscore_definitions():
    act = [1.0, 2.0, 8.0]
    assert gradient_decay(act)[:2] == pytest.approx([math.log(2.0), math.log(4.0)])
    assert math.isnan(gradient_decay(act)[2])
    z = zscore([1.0, 2.0, float("nan"), 3.0])
    assert z[2] == 0.0 and z[[0, 1, 3]].mean() == pytest.approx(0.0) and z[[0, 1, 3]].std() == pytest.approx(1.0)
    assert (zscore([5.0, 5.0, 5.0]) == 0).all()


def test_scores_follow_the_formula_and_width_defaults_to_a_quarter():
    entropy = [2.0, 1.0, 1.5, 2.5, 3.0, 2.2, 1.1]
    act = [0.5, 0.6, 2.0, 2.1, 2.0, 4.0, 5.0]
    sel = select_inflection_layers(entropy, act)
    expected = zscore([-h for h in entropy]) + zscore(gradient_decay(act))
    assert sel.scores == pytest.approx(expected.tolist())
    assert len(sel.layers) == 2  # ceil(7 / 4)
    totals = [expected[s:s + 2].sum() for s in range(6)]
    assert sel.layers[0] == int(np.argmax(totals))


def test_bad_width_is_a_user_error():
    with pytest.raises(UserError):
        select_inflection_layers([1.0, 2.0], [1.0, 2.0], width=3)
    with pytest.raises(UserError):
        select_inflection_layers([1.0, 2.0], [1.0])
