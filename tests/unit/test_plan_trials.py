"""Successive halving over scripted trials: who goes on (lower validation NLL; scripted as 1 - accuracy), who is
rejected, and that a collapsed or diverged candidate is never chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunescope.errors import UserError
from tunescope.planning.rules import Candidate
from tunescope.planning.trials import (
    BaseRates,
    Trial,
    learnt_nothing,
    prior_nll,
    rung_steps,
    successive_halving,
)


class ScriptedRunner(BaseRates):
    """advance() reads (validation accuracy, collapsed[, one_class[, nll]]) per step from a script instead of
    training; the NLL defaults to 1 - accuracy."""

    majority_accuracy = 0.5
    prior_nll = 0.69

    def __init__(self, script: dict[str, dict[int, tuple]]):
        self.script = script
        self.calls: list[tuple[str, int]] = []

    def advance(self, trial: Trial, to_step: int) -> None:
        self.calls.append((trial.candidate.strategy, to_step))
        outcome = self.script[trial.candidate.strategy].get(to_step, ("diverged",))
        if outcome[0] == "diverged":
            trial.status, trial.reason = "diverged", "diverged"
            return
        accuracy, collapsed, *rest = outcome
        one_class = bool(rest and rest[0]) or collapsed
        nll = rest[1] if len(rest) > 1 else 1.0 - accuracy
        trial.rungs.append({"step": to_step, "validation_accuracy": accuracy, "validation_nll": nll,
                            "collapsed": collapsed, "one_class": one_class,
                            "predicted_share": 1.0 if one_class else 0.6})
        trial.steps = to_step


def trials(*names: str, params: dict | None = None) -> list[Trial]:
    params = params or {}
    return [Trial(Candidate(n, {}, params.get(n, 100), 1.0), None, Path("/nonexistent") / n) for n in names]


def test_better_half_goes_on_until_one_is_left():
    runner = ScriptedRunner({"a": {20: (0.70, False), 40: (0.80, False)},
                             "b": {20: (0.75, False), 40: (0.78, False)},
                             "c": {20: (0.60, False)}})
    ts = trials("a", "b", "c")
    winner = successive_halving(runner, ts, 20, 1000)
    assert winner.candidate.strategy == "a" and winner.status == "chosen"
    assert {t.candidate.strategy: t.status for t in ts} == {"a": "chosen", "b": "dropped", "c": "dropped"}
    assert runner.calls == [("a", 20), ("b", 20), ("c", 20), ("b", 40), ("a", 40)]


def test_collapsed_candidate_is_never_chosen_even_with_the_best_accuracy():
    runner = ScriptedRunner({"a": {20: (0.90, True)}, "b": {20: (0.70, False)}})
    ts = trials("a", "b")
    assert successive_halving(runner, ts, 20, 1000).candidate.strategy == "b"
    assert ts[0].status == "collapsed" and "collapsed at step 20" in ts[0].reason


def test_a_one_class_leader_goes_on_but_is_never_chosen():
    # a has the lowest NLL throughout but predicts one class (its NLL still falling: not collapsed yet)
    runner = ScriptedRunner({"a": {20: (0.9, False, True), 40: (0.9, False, True)},
                             "b": {20: (0.7, False), 40: (0.8, False)}})
    ts = trials("a", "b")
    assert successive_halving(runner, ts, 20, 40).candidate.strategy == "b"
    assert ("a", 40) in runner.calls and ts[0].status == "dropped"


def test_a_leader_that_learnt_nothing_eliminates_nobody():
    # The rt-from-UNDER cell of the plan suite: at step 8, `lora` spread its predictions but stood below the majority
    # class with an NLL above the base rates'; `full` and `sift` predicted one class. It used to win right there and
    # ended at the majority class. Now every candidate goes on until one learns.
    runner = ScriptedRunner({"lora": {8: (0.45, False, False, 0.70), 16: (0.48, False, False, 0.70),
                                      32: (0.50, False, False, 0.70)},
                             "full": {8: (0.5, True), 16: (0.5, True), 32: (0.75, False)},
                             "sift": {8: (0.5, True), 16: (0.5, True), 32: (0.5, True)}})
    ts = trials("lora", "full", "sift")
    assert successive_halving(runner, ts, 8, 48).candidate.strategy == "full"
    assert [c for c in runner.calls if c[1] == 16] == [("lora", 16), ("full", 16), ("sift", 16)]
    assert {t.candidate.strategy: t.status for t in ts} == {"lora": "dropped", "full": "chosen", "sift": "collapsed"}


def test_a_candidate_below_the_base_rates_is_never_chosen_even_alone():
    runner = ScriptedRunner({"a": {8: (0.45, False, False, 0.75), 16: (0.48, False, False, 0.72)}})
    with pytest.raises(UserError, match="no candidate survived"):
        successive_halving(runner, trials("a"), 8, 16)


def test_an_over_confident_candidate_that_beats_the_majority_can_win():
    # NLL above the base rates' (over-confident) but accuracy 20 points above the majority class: it learnt.
    runner = ScriptedRunner({"a": {20: (0.70, False, False, 0.95)}})
    assert successive_halving(runner, trials("a"), 20, 20).candidate.strategy == "a"


def test_the_best_candidate_that_can_win_goes_on_beside_a_one_class_better_half():
    # The rt-pretrained seed-1 cell: at step 8 full and LoRA predict one class with the lowest NLLs, LP-FT and
    # LP-LoRA separate the classes with higher NLLs; full and LoRA never learn. LP-FT must not be dropped there.
    runner = ScriptedRunner({"full": {8: (0.5, False, True, 0.60), 16: (0.5, False, True, 0.58),
                                      32: (0.5, True), 48: (0.5, True)},
                             "lora": {8: (0.5, False, True, 0.62), 16: (0.5, True), 32: (0.5, True)},
                             "lp-ft": {8: (0.66, False, False, 0.66), 16: (0.67, False, False, 0.64),
                                       32: (0.70, False, False, 0.60), 48: (0.72, False, False, 0.58)},
                             "lp-lora": {8: (0.64, False, False, 0.67)}})
    ts = trials("full", "lora", "lp-ft", "lp-lora")
    assert successive_halving(runner, ts, 8, 48).candidate.strategy == "lp-ft"
    assert ("lp-ft", 16) in runner.calls and ts[3].status == "dropped"


def test_diverged_candidate_is_rejected():
    runner = ScriptedRunner({"a": {}, "b": {20: (0.6, False)}})
    ts = trials("a", "b")
    assert successive_halving(runner, ts, 20, 1000).candidate.strategy == "b"
    assert ts[0].status == "diverged"


def test_when_every_candidate_collapses_all_get_more_steps():
    runner = ScriptedRunner({"a": {20: (0.5, True), 40: (0.5, True)}, "b": {20: (0.5, True), 40: (0.8, False)}})
    ts = trials("a", "b")
    assert successive_halving(runner, ts, 20, 1000).candidate.strategy == "b"
    assert ("a", 40) in runner.calls and ts[0].status == "collapsed"


def test_nothing_survives_is_a_user_error():
    runner = ScriptedRunner({"a": {20: (0.5, True), 40: (0.5, True)}, "b": {}})
    with pytest.raises(UserError, match="no candidate survived"):
        successive_halving(runner, trials("a", "b"), 20, 40)


def test_ties_go_to_fewer_trainable_parameters():
    runner = ScriptedRunner({"big": {20: (0.7, False)}, "small": {20: (0.7, False)}})
    ts = trials("big", "small", params={"big": 1000, "small": 10})
    assert successive_halving(runner, ts, 20, 20).candidate.strategy == "small"


def test_rung_steps():
    assert rung_steps(319) == 40
    assert rung_steps(16) == 20
    assert rung_steps(319, requested=7) == 7


def test_prior_nll_is_the_cross_entropy_of_the_base_rates():
    train = np.array([0, 0, 0, 1])  # q = (0.75, 0.25)
    assert prior_nll(train, np.array([0, 1])) == pytest.approx(-(np.log(0.75) + np.log(0.25)) / 2)


def test_one_class_predictions_are_a_collapse_only_without_learning():
    labels = np.array([0, 1] * 50)
    constant = np.zeros(100, dtype=int)
    assert learnt_nothing(constant, labels, nll=0.70, prior=0.69)  # one class, no better than the base rates
    assert not learnt_nothing(constant, labels, nll=0.60, prior=0.69)  # one argmax, but the NLL is falling
    assert not learnt_nothing(labels, labels, nll=0.80, prior=0.69)  # predictions spread over both classes
