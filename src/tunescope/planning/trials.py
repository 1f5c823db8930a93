"""Short trials of the plan's candidates: successive halving on the validation split.

Every candidate trains with the schedule its final run would have (same epochs, learning-rate schedule, data order
and seed), paused at rung steps S, 2S, 4S, ... (Trainer checkpoints). After each rung the validation split is
scored (accuracy, and the NLL = mean -log p(y | x), which moves before the argmax does):
- a candidate whose loss went NaN / exploded (the divergence guard) is rejected as `diverged`;
- one that has learnt nothing is rejected as `collapsed`: it predicts a single class for >= 95% of the validation
  examples (tasks.classification.collapse_warning) AND its NLL is no lower than the prior's,
  NLL_prior = -mean_i log q(y_i) with q the training-label frequencies (knowing only the base rates). Early in
  training a fresh head often gives every example the same argmax while the NLL already falls: that model is
  learning, not collapsed. Candidates are rejected as collapsed only at a rung where another one can win (below),
  or at the last rung;
- a candidate can win only if it predicts more than one class AND beats the base rates: NLL < NLL_prior or accuracy
  >= majority + 1 point. Until some candidate can win, nobody is dropped or rejected and every candidate gets the
  next rung (a 48-step trial once "won" at step 8 with an NLL above the prior and then ended at the majority class);
- of the healthy rest, the better half by validation NLL (ties: fewer trainable parameters) goes on, plus the best
  candidate that can win when that half holds none; the others are `dropped` with their numbers.
Halving ends when one candidate that can win is left: the winner. Its checkpoint is the start of its final run, so the
steps it trained in the trials are not trained again (`tunescope run` resumes from it).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from tunescope.errors import TrainingDivergedError, UserError
from tunescope.planning.rules import Candidate

log = logging.getLogger(__name__)

MIN_RUNG_STEPS = 20
BASE_RATE_MARGIN = 0.01  # accuracy above the majority class that counts as having learnt something


def prior_nll(train_labels: np.ndarray, labels: np.ndarray) -> float:
    """NLL_prior = -mean_i log q(y_i), q the class frequencies of `train_labels` (the base-rate predictor)."""
    train = np.asarray(train_labels)
    labels = np.asarray(labels)
    q = np.bincount(train, minlength=int(max(train.max(), labels.max())) + 1) / len(train)
    return float(-np.mean(np.log(np.clip(q[labels], 1e-12, None))))


def learnt_nothing(predictions: np.ndarray, labels: np.ndarray, nll: float, prior: float) -> bool:
    """Collapsed: one class for >= 95% of the examples (collapse_warning) and an NLL no lower than the prior's."""
    from tunescope.tasks.classification import collapse_warning

    return collapse_warning(np.asarray(predictions), np.asarray(labels), split="validation") is not None \
        and nll >= prior


class NoSurvivorError(UserError):
    """Every candidate of a round of trials collapsed or diverged."""


class RandomState:
    """The global random state (python, numpy, torch CPU and GPU) as task.load left it. Restored before each
    candidate's prepare(), so LoRA's random A, a random SIFT mask or a fresh head are drawn exactly as in a plain
    `finetune` of that candidate, which prepares right after loading: the trial is the start of that very run."""

    def __init__(self) -> None:
        import random

        import torch

        self.python, self.numpy, self.torch = random.getstate(), np.random.get_state(), torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore(self) -> None:
        import random

        import torch

        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class RungStop(TrainerCallback):
    """Pauses training at step `at`: a checkpoint is saved there and the Trainer stops, without the epoch-end
    evaluation / save the Trainer would add when it breaks out of the epoch (the trial scores the rung itself)."""

    def __init__(self) -> None:
        self.at: int | None = None
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.at is not None and state.global_step >= self.at:
            control.should_save = True
            control.should_training_stop = True
            self.stopped = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped:
            control.should_evaluate = False
            control.should_save = False
        return control


@dataclass
class Trial:
    """One candidate's trial: its config, folder, Trainer, and a row per rung."""

    candidate: Candidate
    config: Any
    folder: Path
    trainer: Any = None
    stop: RungStop = field(default_factory=RungStop)
    rungs: list[dict] = field(default_factory=list)
    status: str = "running"  # running | collapsed | diverged | dropped | chosen
    reason: str = ""
    seconds: float = 0.0
    steps: int = 0
    trains: bool = True  # False for `head`: LP in prepare(), no gradient steps (its trial is its whole run)
    random_state: RandomState | None = None

    def to_dict(self) -> dict:
        return {"strategy": self.candidate.strategy, "settings": self.candidate.settings,
                "trainable_params": self.candidate.trainable_params, "status": self.status, "reason": self.reason,
                "rungs": self.rungs, "steps": self.steps, "seconds": round(self.seconds, 2)}

    @property
    def last(self) -> dict:
        return self.rungs[-1] if self.rungs else {}


def rung_steps(steps_per_epoch: int, requested: int = 0) -> int:
    """S: `requested`, or an eighth of an epoch, at least MIN_RUNG_STEPS."""
    return requested if requested > 0 else max(MIN_RUNG_STEPS, math.ceil(steps_per_epoch / 8))


class BaseRates:
    """What a rung result must beat to count as learning: the majority class's accuracy and the base rates' NLL."""

    majority_accuracy: float
    prior_nll: float

    def beats_base_rates(self, row: dict) -> bool:
        """Learnt something: validation NLL below the base rates' or accuracy >= majority + BASE_RATE_MARGIN (an
        over-confident model can have a high NLL and still separate the classes)."""
        return row["validation_nll"] < self.prior_nll or \
            row["validation_accuracy"] >= self.majority_accuracy + BASE_RATE_MARGIN

    def can_win(self, row: dict) -> bool:
        """A rung result that may be chosen: not diverged/collapsed, spread over the classes, beats the base rates."""
        return bool(row) and not row.get("collapsed") and not row.get("one_class") and self.beats_base_rates(row)


class TrialRunner(BaseRates):
    """Builds each candidate's Trainer once (a copy of the pre-trained model, the strategy's prepare) and advances
    it rung by rung."""

    def __init__(self, loaded, pristine, folder: Path, task, random_state: RandomState | None = None):
        self.loaded, self.pristine, self.folder, self.task = loaded, pristine, Path(folder), task
        self.random_state = random_state
        self.memo: dict = {}  # shared by every candidate's prepare() (one LP fit for head, lp-ft, lp-lora)
        labels = np.asarray(loaded.tokenized["validation"]["labels"])
        _values, counts = np.unique(labels, return_counts=True)
        self.majority_accuracy = float(counts.max() / counts.sum())
        self.prior_nll = prior_nll(loaded.tokenized["train"]["labels"], labels)

    def start(self, candidate: Candidate, config) -> Trial:
        from tunescope.strategies import STRATEGIES
        from tunescope.strategies.base import StrategyContext, learning_rate_for
        from tunescope.training.trainer import build_trainer

        trial = Trial(candidate, config, self.folder / candidate.strategy)
        trial.folder.mkdir(parents=True, exist_ok=True)
        strategy = STRATEGIES.get(config.strategy)
        lr = learning_rate_for(strategy, config)
        started = time.perf_counter()
        model = copy.deepcopy(self.pristine)
        if self.random_state is not None:
            self.random_state.restore()
        ctx = StrategyContext(config=config, tokenizer=self.loaded.tokenizer, data=self.loaded.data,
                              tokenized=self.loaded.tokenized, collator=self.loaded.collator, results={},
                              out_dir=trial.folder, learning_rate=lr, task=self.task, memo=self.memo)
        model = strategy.prepare(model, ctx)
        trial.trains = strategy.trains
        trial.trainer = build_trainer(model, self.loaded.tokenizer, self.loaded.tokenized, self.loaded.collator,
                                      config, trial.folder, learning_rate=lr, strategy=strategy,
                                      optimizer=strategy.create_optimizer(model, ctx),
                                      callbacks=[*strategy.callbacks(model, ctx), trial.stop])
        # The random state a plain run trains from (the Trainer seeds it when built): restored at the first rung,
        # since other candidates' training runs in between. Later rungs resume it from the checkpoint.
        trial.random_state = RandomState()
        trial.seconds += time.perf_counter() - started
        return trial

    def advance(self, trial: Trial, to_step: int) -> None:
        """Train `trial` up to optimizer step `to_step` (from its last rung's checkpoint) and score the rung."""
        from tunescope.tasks.classification import collapse_warning
        from tunescope.training.checkpoints import latest_complete_checkpoint

        started = time.perf_counter()
        trial.stop.at, trial.stop.stopped = to_step, False
        resume = latest_complete_checkpoint(trial.folder / "checkpoints") if trial.rungs else None
        if not trial.rungs and trial.random_state is not None:
            trial.random_state.restore()
        try:
            if trial.trains:
                trial.trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        except TrainingDivergedError as err:
            trial.status, trial.reason = "diverged", f"diverged before step {to_step}: {err}"
            trial.seconds += time.perf_counter() - started
            return
        trained = time.perf_counter() - started
        step = int(trial.trainer.state.global_step)
        evaluation = self.task.evaluate(trial.trainer.model, self.loaded, "validation", trial.config.eval_batch_size)
        logits, labels = evaluation.arrays["logits"], evaluation.arrays["labels"]
        predictions = np.asarray(logits).argmax(axis=1)
        nll = float(evaluation.metrics["nll"])
        accuracy = float(evaluation.metrics["accuracy"])
        losses = [h["loss"] for h in trial.trainer.state.log_history if "loss" in h]
        trial.rungs.append({
            "step": step, "validation_accuracy": accuracy, "validation_nll": float(evaluation.metrics["nll"]),
            "train_loss": float(losses[-1]) if losses else None,
            "predicted_share": float(np.bincount(predictions).max() / len(predictions)),
            "collapsed": learnt_nothing(predictions, labels, nll, self.prior_nll),
            "one_class": collapse_warning(predictions, labels, split="validation") is not None,
            "seconds_per_step": trained / max(step - trial.steps, 1)})
        trial.steps = step
        trial.seconds += time.perf_counter() - started


def successive_halving(runner: TrialRunner, trials: list[Trial], first_rung: int, total_steps: int,
                       progress=None) -> Trial:
    """Advance the trials rung by rung (module docstring) and return the winner; UserError when every candidate
    diverged or collapsed."""
    alive = list(trials)
    step = min(first_rung, total_steps)
    while True:
        for trial in alive:
            runner.advance(trial, step)
            if progress is not None:
                progress(trial)
        last_rung = step >= total_steps
        diverged = [t for t in alive if t.status == "diverged"]
        healthy = [t for t in alive if t.status == "running" and not t.last.get("collapsed")]
        collapsed = [t for t in alive if t.status == "running" and t.last.get("collapsed")]
        if not any(runner.can_win(t.last) for t in healthy) and not last_rung:
            # Nobody can win yet (module docstring): a slow start is not a collapse, and a leader that learnt nothing is
            # no evidence against the others (it once won a 48-step cell at step 8 with NLL above the prior and
            # then ended at the majority class). Every candidate gets the next rung.
            step = min(step * 2, total_steps)
            continue
        for t in collapsed:
            r = t.last
            t.status, t.reason = "collapsed", (
                f"collapsed at step {r['step']}: predicts one class for {r['predicted_share']:.0%} of validation, "
                f"NLL {r['validation_nll']:.4f} no better than the base rates' {runner.prior_nll:.4f}")
        if not healthy:
            reasons = "; ".join(f"{t.candidate.strategy}: {t.reason}" for t in [*diverged, *collapsed])
            raise NoSurvivorError(f"no candidate survived its trial ({reasons}); try more data, another learning "
                                  "rate or --trial-steps")
        healthy.sort(key=lambda t: (t.last["validation_nll"], t.candidate.trainable_params))
        # Only a candidate that can win: its predictions spread over the classes and it beats the base rates. A
        # one-class predictor whose NLL is still falling goes on to the next rung, but is never chosen.
        winners = [t for t in healthy if runner.can_win(t.last)]
        if last_rung:
            if not winners:
                for t in healthy:
                    r = t.last
                    t.status, t.reason = "collapsed", (
                        f"learnt nothing by its last rung, step {r['step']}: predicts one class for "
                        f"{r['predicted_share']:.0%} of validation, accuracy {r['validation_accuracy']:.3f} "
                        f"(majority {runner.majority_accuracy:.3f}), NLL {r['validation_nll']:.4f} (base rates "
                        f"{runner.prior_nll:.4f})")
                raise NoSurvivorError("no candidate survived its trial: none separates the classes better than the "
                                      "base rates at its last rung; try more data, another learning rate or "
                                      "--trial-steps")
            keep_list = [winners[0]]
        else:
            keep_list = healthy[:math.ceil(len(healthy) / 2)]
            if not any(runner.can_win(t.last) for t in keep_list):
                # The better half by NLL holds only candidates that cannot win yet (one-class predictors whose NLL
                # falls): the best one that can win goes on with them. Without this, LP-FT and LP-LoRA (spread
                # predictions, NLL raised by their large LP head) were dropped at step 8 of a suite cell for full
                # and LoRA, which never left the majority class, and the plan ended with no survivor.
                keep_list.append(winners[0])
        best = keep_list[0].last
        for t in healthy:
            if t not in keep_list:
                t.status, t.reason = "dropped", (
                    f"validation NLL {t.last['validation_nll']:.4f} (accuracy {t.last['validation_accuracy']:.3f}) "
                    f"at step {t.last['step']} vs {best['validation_nll']:.4f} ({best['validation_accuracy']:.3f}) "
                    f"for {keep_list[0].candidate.strategy}")
        alive = keep_list
        if len(alive) == 1 and runner.can_win(alive[0].last):
            alive[0].status = "chosen"
            alive[0].reason = (f"lowest validation NLL {best['validation_nll']:.4f} (accuracy "
                               f"{best['validation_accuracy']:.3f}, majority {runner.majority_accuracy:.3f}) at step "
                               f"{best['step']}")
            return alive[0]
        step = min(step * 2, total_steps)
