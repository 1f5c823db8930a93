"""Linear probing (LP): fit the head (V, b) on frozen features and install it in the model.

Shared by the `head` (LP alone), `lp-ft` and `lp-lora` strategies. As in Tomihari & Sato (2024), LP is an
L2-regularised multinomial logistic regression with a cross-validated strength (sklearn
LogisticRegressionCV), on features phi(x) extracted once from the training split without gradients
(phi = input of the head's final linear layer; see diagnostics/features.py).

Objective for a strength C (sklearn's convention): minimise over (W, c)
    0.5 ||W||_F^2 + C * sum_i -log softmax(W phi(x_i) + c)_{y_i}
with C chosen from `cs` log-spaced values by k-fold cross-validated accuracy, then refit on all data.
For two classes sklearn fits one logit w.phi + c (a sigmoid). The softmax head needs two rows; we install the
minimum-norm equivalent V = [-w/2; w/2], b = [-c/2; c/2], whose logit difference is w.phi + c, so the two
models give identical probabilities.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tunescope.diagnostics.features import extract_features, head_linear, head_norm
from tunescope.errors import UserError
from tunescope.strategies.options import LinearProbeOptions  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


@dataclass
class ProbeFit:
    """A fitted linear probe in softmax-head form."""

    weight: np.ndarray  # V [C, d]
    bias: np.ndarray  # b [C]
    strength: float  # the cross-validated C (inverse L2 strength)
    cv_accuracy: float  # mean cross-validated accuracy at that C
    train_accuracy: float
    seconds: float


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int, *, cs: int = 10, cv: int = 5,
                     max_iter: int = 1000, seed: int = 0, fit_intercept: bool = True) -> ProbeFit:
    """L2 multinomial logistic regression with cross-validated strength on features [N, d], labels [N].

    Minimises 0.5 ||W||_F^2 + C * sum_i CE(W phi_i + c, y_i) with C chosen by `cv`-fold cross-validation
    (accuracy) among `cs` values log-spaced in [1e-4, 1e4] (sklearn LogisticRegressionCV). With two classes sklearn
    fits one logit w.phi + c; we return its minimum-norm softmax equivalent V = [-w/2; w/2], b = [-c/2; c/2].
    Returns V [C, d], b [C] such that softmax(V phi + b) are the fitted class probabilities.
    """
    from sklearn.linear_model import LogisticRegressionCV
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise UserError(f"bad training labels {present.tolist()} for the linear probe: expected at least 2 classes")
    folds = int(min(cv, np.bincount(labels).max(), np.bincount(labels)[present].min()))
    if folds < 2:
        raise UserError("bad training split for the linear probe: every class needs at least 2 examples")
    start = time.perf_counter()
    clf = LogisticRegressionCV(Cs=cs, cv=folds, l1_ratios=(0.0,), scoring="accuracy", max_iter=max_iter, tol=1e-6,
                               fit_intercept=fit_intercept, random_state=seed, use_legacy_attributes=False)
    # One BLAS/OpenMP thread: lbfgs on a few thousand rows gains nothing from threads, and next to torch's
    # spinning OpenMP pool two threads made this fit ~35x slower on 2 cores (105 s vs 3 s, docs/results/lpft.md).
    with threadpool_limits(limits=1):
        clf.fit(features, labels)
    coef, intercept = clf.coef_, clf.intercept_
    weight = np.zeros((num_classes, features.shape[1]))
    bias = np.zeros(num_classes)
    if coef.shape[0] == 1:  # binary: one logit for class clf.classes_[1] against clf.classes_[0]
        neg, pos = clf.classes_
        weight[neg], weight[pos] = -coef[0] / 2, coef[0] / 2
        bias[neg], bias[pos] = -intercept[0] / 2, intercept[0] / 2
    else:
        weight[clf.classes_] = coef
        bias[clf.classes_] = intercept
        # Classes absent from training never win: a very negative bias, zero weight.
        missing = np.setdiff1d(np.arange(num_classes), clf.classes_)
        bias[missing] = bias.min() - 30.0
    strength = float(np.ravel(clf.C_)[0])
    scores = np.asarray(clf.scores_[present[-1]] if isinstance(clf.scores_, dict) else clf.scores_)
    cv_acc = float(np.max(scores.reshape(folds, -1).mean(axis=0)))
    train_acc = float(((features @ weight.T + bias).argmax(1) == labels).mean())
    return ProbeFit(weight, bias, strength, cv_acc, train_acc, time.perf_counter() - start)


def standardized_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                                test_y: np.ndarray, *, max_iter: int = 3000) -> float:
    """Test accuracy of a fixed-strength probe: standardised features -> L2 logistic regression (C = 1, lbfgs),
    fitted on (train_x, train_y). A cheap capability read-out on frozen features (pre-training, basins), not LP."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=max_iter))
    with threadpool_limits(limits=1):  # see fit_linear_probe: torch's and BLAS's thread pools fight
        clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


@torch.no_grad()
def install_head(model: nn.Module, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy V [C, d] and b [C] into the final linear layer of the model's head (bias dropped if it has none)."""
    lin = head_linear(model)
    w = torch.as_tensor(weight, dtype=lin.weight.dtype, device=lin.weight.device)
    if w.shape != lin.weight.shape:
        raise ValueError(f"probe weight {tuple(w.shape)} does not fit the head {tuple(lin.weight.shape)}")
    lin.weight.copy_(w)
    if lin.bias is not None:
        lin.bias.copy_(torch.as_tensor(bias, dtype=lin.bias.dtype, device=lin.bias.device))
    elif np.abs(bias).max() > 0:
        log.warning("the head has no bias; the probe's bias (max |b| = %.3g) is dropped", np.abs(bias).max())


def linear_probe(model: nn.Module, train_dataset, collator, num_classes: int, *, batch_size: int = 128,
                 cs: int = 10, cv: int = 5, seed: int = 0) -> dict:
    """LP stage: features of the training split (once, no gradients) -> fit -> install into the head.

    The model is modified in place. Returns the facts for results.json: head norms before and after,
    the chosen strength, CV and training accuracy, timing.
    """
    norm_init = head_norm(model)
    t0 = time.perf_counter()
    feats, labels = extract_features(model, train_dataset, collator, batch_size)
    extract_s = time.perf_counter() - t0
    # Decoder `score` heads have no bias: fit without an intercept so the installed head is the fitted one.
    fit = fit_linear_probe(feats.numpy(), labels.numpy(), num_classes, cs=cs, cv=cv, seed=seed,
                           fit_intercept=head_linear(model).bias is not None)
    install_head(model, fit.weight, fit.bias)
    return {
        "head_norm_init": norm_init,
        "head_norm_after_lp": head_norm(model),
        "lp_strength": fit.strength,
        "lp_cv_accuracy": fit.cv_accuracy,
        "lp_train_accuracy": fit.train_accuracy,
        "lp_feature_seconds": round(extract_s, 3),
        "lp_fit_seconds": round(fit.seconds, 3),
        "lp_num_features": int(feats.shape[1]),
        "lp_num_examples": int(feats.shape[0]),
    }


def lp_stage(model: nn.Module, ctx) -> dict:
    """Run LP inside a strategy's prepare(): fit on ctx's training split, install, record facts in ctx.results.
    A fit already in ctx.memo (an earlier candidate of the same plan) is installed instead of fitted again.

    Writes `head_norm.init` / `head_norm.after_lp` and an `lp` block (strength, CV accuracy, timing).
    """
    cfg = ctx.config
    key = ("linear-probe", cfg.lp_cs, cfg.lp_cv, cfg.seed)
    if key in ctx.memo:  # the same pre-trained model and training split (StrategyContext.memo): same fit
        weight, bias, facts = ctx.memo[key]
        install_head(model, weight, bias)
        facts = dict(facts)
    else:
        facts = linear_probe(model, ctx.tokenized["train"], ctx.collator, ctx.data.num_labels,
                             batch_size=getattr(cfg, "eval_batch_size", 128), cs=cfg.lp_cs, cv=cfg.lp_cv,
                             seed=cfg.seed)
        lin = head_linear(model)
        bias = lin.bias.detach().cpu().numpy().copy() if lin.bias is not None else np.zeros(lin.weight.shape[0])
        ctx.memo[key] = (lin.weight.detach().cpu().numpy().copy(), bias, dict(facts))
    norms = ctx.results.setdefault("head_norm", {})
    norms["init"] = facts.pop("head_norm_init")
    norms["after_lp"] = facts.pop("head_norm_after_lp")
    ctx.results["lp"] = facts
    log.info("LP: C=%.3g, CV accuracy %.4f, head norm %.3f -> %.3f", facts["lp_strength"], facts["lp_cv_accuracy"],
             norms["init"], norms["after_lp"])
    return facts
