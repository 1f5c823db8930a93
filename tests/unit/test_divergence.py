"""A NaN / infinite training loss stops the run with a clear UserError (exit 2), naming the learning rate."""

from __future__ import annotations

import pytest
from transformers import TrainerControl, TrainerState

from tunescope.errors import TrainingDivergedError, UserError
from tunescope.training.trainer import DivergenceGuard


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_guard_raises_on_non_finite_loss(loss):
    guard = DivergenceGuard(learning_rate=3.0)
    state = TrainerState()
    state.global_step = 7
    with pytest.raises(TrainingDivergedError, match="at step 7; lower learning_rate \\(now 3\\)") as err:
        guard.on_log(None, state, TrainerControl(), logs={"loss": loss})
    assert isinstance(err.value, UserError)


def test_guard_ignores_finite_and_eval_logs():
    guard = DivergenceGuard(learning_rate=1e-3)
    guard.on_log(None, TrainerState(), TrainerControl(), logs={"loss": 0.5})
    guard.on_log(None, TrainerState(), TrainerControl(), logs={"eval_accuracy": 0.5})
