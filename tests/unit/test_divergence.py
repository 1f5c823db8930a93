"""The divergence rule: a NaN / infinite loss at once, or a loss over EXPLOSION_FACTOR x the starting loss (the mean
of the first START_STEPS steps, floored at MIN_START_LOSS) for EXPLOSION_PATIENCE steps in a row or at the last
step, stops the run with a one-line UserError (exit 2); a spike that recovers does not."""

from __future__ import annotations

import json
import math

import pytest

from tunescope.errors import TrainingDivergedError, UserError
from tunescope.training.trainer import (
    EXPLOSION_FACTOR,
    EXPLOSION_PATIENCE,
    MIN_START_LOSS,
    START_STEPS,
    DivergenceGuard,
    divergence_reason,
)


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_loss_diverges_even_before_a_start_is_known(loss):
    assert divergence_reason(loss, None) == "non-finite"
    assert divergence_reason(loss, 0.7) == "non-finite"


def test_explosion_is_factor_times_the_start_with_a_floor():
    start = 2.0  # above the floor: the threshold is 10 x 2.0
    assert divergence_reason(EXPLOSION_FACTOR * start, start) is None  # "over", not "at"
    assert divergence_reason(EXPLOSION_FACTOR * start * 1.001, start) == "explosion"
    assert divergence_reason(1e6, None) is None  # no start yet: only the non-finite rule applies
    # A start near zero (a model already good at the task) is held to the floor, not to 10 x 0.01.
    assert divergence_reason(0.5, 0.01) is None
    assert divergence_reason(EXPLOSION_FACTOR * MIN_START_LOSS * 1.01, 0.01) == "explosion"


def test_guard_start_is_the_mean_of_the_first_steps():
    guard = DivergenceGuard(learning_rate=1e-3)
    losses = [0.9, 0.7, 0.8, 0.1, 0.05]
    for step, loss in enumerate(losses, 1):
        guard.observe(step, loss, 1e-3)
    assert START_STEPS == 3 and guard.start == pytest.approx(sum(losses[:3]) / 3)
    guard.observe(6, EXPLOSION_FACTOR * guard.start * 0.99, 1e-3)  # a bad step, but not an explosion
    with pytest.raises(TrainingDivergedError, match="at step 7: the loss 9 is over 10x its starting value 0.8 "
                                                    r"\(1 step, to the end of training\)"):
        guard.observe(7, 9.0, 1e-3, last=True)


def test_a_sustained_explosion_diverges_after_the_patience():
    """Steps 3, 4, ... at 1e6: each is compared with the mean of steps 1-2 (an early blow-up does not enter the
    start); the run stops at the EXPLOSION_PATIENCE-th exploded step in a row."""
    guard = DivergenceGuard(learning_rate=1e6)
    guard.observe(1, 0.69, 0.0)
    guard.observe(2, 0.70, 1e6)
    last = 2 + EXPLOSION_PATIENCE
    for step in range(3, last):
        guard.observe(step, 1.06e6, 8.57e5)
    assert guard.start == pytest.approx(0.695) and guard.streak == EXPLOSION_PATIENCE - 1
    with pytest.raises(TrainingDivergedError) as err:
        guard.observe(last, 1.06e6, 8.57e5)
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    assert message == (f"training diverged at step {last}: the loss 1.06e+06 is over 10x its starting value 0.695 "
                       f"({EXPLOSION_PATIENCE} steps in a row) (learning rate 8.57e+05 at that step, configured "
                       "learning_rate 1e+06); lower learning_rate (e.g. learning_rate=100000) or check the data and "
                       "labels; no results were recorded")


def test_a_spike_that_recovers_is_not_divergence():
    """LP-FT on tiny Llama (tests/contract): a confident probe, then 4 steps near 50-80 nats, then recovery."""
    guard = DivergenceGuard(learning_rate=1e-2)
    losses = [0.067, 51.3, 53.5, 48.9, 83.9, 2.95, 24.2, 8.67, 4.34, 4.28, 5.33, 3.11, 6.52, 0.4, 0.02, 0.003]
    for step, loss in enumerate(losses, 1):
        guard.observe(step, loss, 1e-2, last=step == len(losses))
    assert guard.start == pytest.approx(0.067)  # the spike did not enter the starting loss


def test_explosion_at_the_last_step_diverges():
    guard = DivergenceGuard(learning_rate=1.0)
    for step, loss in enumerate([0.7, 0.7, 0.7, 50.0, 60.0], 1):
        guard.observe(step, loss, 1.0)
    with pytest.raises(TrainingDivergedError, match=r"\(3 steps in a row, to the end of training\)"):
        guard.observe(6, 70.0, 1.0, last=True)


def test_nan_message_and_record(tmp_path):
    record = tmp_path / "metrics.jsonl"
    guard = DivergenceGuard(learning_rate=3.0, record_to=record)
    with pytest.raises(TrainingDivergedError, match=r"at step 7: the loss became nan \(learning rate 2.5 at that "
                                                    r"step, configured learning_rate 3\); lower learning_rate "
                                                    r"\(e.g. learning_rate=0.3\)"):
        guard.observe(7, math.nan, 2.5)
    last = json.loads(record.read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == 7 and last["reason"] == "non-finite"
    assert last["diverged_loss"] == "nan" and last["message"].startswith("training diverged at step 7")


def test_guard_does_not_record_on_other_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    record = tmp_path / "metrics.jsonl"
    with pytest.raises(TrainingDivergedError):
        DivergenceGuard(learning_rate=1.0, record_to=record).observe(1, math.inf, 1.0)
    assert not record.exists()


def test_healthy_losses_pass():
    guard = DivergenceGuard(learning_rate=1e-3)
    for step, loss in enumerate([0.70, 0.69, 0.71, 0.65, 0.4, 0.2, 0.05, 1.2, 0.01], 1):
        guard.observe(step, loss, 1e-3)
