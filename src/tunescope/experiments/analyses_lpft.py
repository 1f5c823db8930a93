"""Training add-ons for the LP-FT analyses on every classification run (Tomihari & Sato 2024).

before_train: the eNTK split P + F and the FT ratio at the start of fine-tuning (when `ntk_samples > 0`).
after_train:  calibration of the test predictions (ECE, MCE, NLL, Brier; temperature scaling fitted on the
              validation split) into `eval`; `head_norm` (init / after_lp / after_ft); `feature_change`
              between the pre-trained and the fine-tuned features phi(x) on the test split.
"""

from __future__ import annotations

import logging

from tunescope.config import check
from tunescope.diagnostics.calibration import calibration_report
from tunescope.diagnostics.features import extract_features, feature_change, head_norm
from tunescope.training.addons import TRAINING_ADDONS, AddonBase, RunState

log = logging.getLogger(__name__)

CALIBRATION_KEYS = ("ece", "mce", "brier", "temperature", "nll_after_ts", "ece_after_ts", "mce_after_ts",
                    "brier_after_ts")


def ntk_before_train(run: RunState) -> None:
    """eNTK at the start of fine-tuning on `ntk_samples` training examples -> results["ntk"]."""
    n = int(getattr(run.config, "ntk_samples", 0) or 0)
    check(n >= 0, "ntk_samples", n, "an integer >= 0")
    if n == 0 or run.data is None or "train" not in run.tokenized:
        return
    from tunescope.experiments.ntk import ntk_of_prepared

    # FT ratio only (the F matrix is `tunescope ntk`'s job): one backward per sample and class.
    res = ntk_of_prepared(run.model, run.tokenized["train"], run.collator, samples=n, seed=run.config.seed,
                          matrix=False)
    run.results["ntk"] = res.summary() if res is not None else {
        "ft_ratio": 0.0, "n_samples": 0, "note": "only the head trains: F = 0"}


def calibration_after_train(run: RunState) -> None:
    """Calibration keys into results["eval"] and the reliability bins into results["calibration"]."""
    logits = run.extras.get("logits") or {}
    if "test" not in logits:
        return
    bins = int(getattr(run.config, "calibration_bins", 15))
    check(bins >= 1, "calibration_bins", bins, "a positive integer")
    val = logits.get("validation")
    rep = calibration_report(*logits["test"], *(val if val is not None else (None, None)), n_bins=bins)
    ev = run.results.setdefault("eval", {})
    for key in CALIBRATION_KEYS:
        if key in rep:
            ev[key] = rep[key]
    run.results["calibration"] = {"n_bins": bins, "reliability": rep["reliability"],
                                  "reliability_after_ts": rep.get("reliability_after_ts")}


def head_and_features_after_train(run: RunState) -> None:
    """head_norm.init (pre-trained model's head) / after_ft, and feature change on the test split."""
    try:
        norms = run.results.setdefault("head_norm", {})
        base = run.base_model_factory() if run.base_model_factory is not None else None
        if base is not None and "init" not in norms:
            norms["init"] = head_norm(base)
        norms["after_ft"] = head_norm(run.model)
    except ValueError as e:  # a model without a classification head: nothing to report
        log.info("no head norm: %s", e)
        return
    if base is None or not getattr(run.config, "feature_change", True) or "test" not in run.tokenized:
        return
    bs = int(getattr(run.config, "eval_batch_size", 128))
    before, _ = extract_features(base, run.tokenized["test"], run.collator, bs)
    after, _ = extract_features(run.model, run.tokenized["test"], run.collator, bs)
    run.results["feature_change"] = feature_change(before, after)


class NTKAtStart(AddonBase):
    """eNTK FT ratio at the start of fine-tuning (FinetuneConfig.ntk_samples > 0)."""

    name = "ntk"

    def enabled(self, config) -> bool:
        return int(getattr(config, "ntk_samples", 0) or 0) > 0

    def before_train(self, run: RunState) -> None:
        ntk_before_train(run)


class Calibration(AddonBase):
    """ECE / MCE / Brier and temperature scaling of the test predictions (every classification run)."""

    name = "calibration"

    def after_train(self, run: RunState) -> None:
        calibration_after_train(run)


class HeadAndFeatures(AddonBase):
    """Head norm (init / after LP / after FT) and feature change (every classification run)."""

    name = "head-and-features"

    def after_train(self, run: RunState) -> None:
        head_and_features_after_train(run)


TRAINING_ADDONS.register("ntk", NTKAtStart())
TRAINING_ADDONS.register("calibration", Calibration())
TRAINING_ADDONS.register("head-and-features", HeadAndFeatures())
