"""The plan's cheap measurements of the pre-trained model on this data, one per paper, on probe batches and a
validation subset (seconds on minilm-l6; nothing is trained):

1. layers (inflection paper): per-layer attention entropy H_l and activation-gradient norm A_l on the probe
   batches, the decay steps log(A_{l+1} / A_l) and the inflection band (diagnostics.layerwise.diagnose).
2. saturation (inflection paper's mechanism): with p = softmax(model(x)) from the model's own head, the mean
   max_c p_c, the share of probe examples with max_c p_c >= SATURATED, and the mean error signal
   e = 1/2 ||p - onehot(y)||_1 (dL/dz of the cross-entropy; near 0 on confidently right examples: the gradient
   reaching the body is suppressed).
3. features (LP-FT paper): accuracy on a validation subset of the linear probe LP-FT would fit (L2 logistic
   regression on the frozen features phi(x) of `plan_probe_examples` training examples, strength by
   cross-validation), beside the majority-class accuracy; the head-norm growth ||V_lp||_F / ||V_0||_F (V_lp: the
   probe's weights, as LP would install them; V_0: the model's current head).
4. sparsity (SIFT paper): share of ||g||^2 carried by the largest 1% of entries of the probe gradient of the block
   weights (diagnostics.sparsity).
Basin width (basins paper) is not measured here: around a fresh head the classifier's score is chance, so the basin
of the pre-trained model on the target task has no floor to measure against (docs/plan.md).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

SATURATED = 0.95  # max_c p_c at or above this counts as a saturated (confident) output
SPARSITY_FRACTION = 0.01


@torch.no_grad()
def output_saturation(model: nn.Module, probe: list[dict]) -> dict:
    """Statistics of p = softmax(logits) of the model's own head on the probe batches (module docstring, 2)."""
    was_training = model.training
    model.eval()
    maxes, errors = [], []
    try:
        for batch in probe:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            p = torch.softmax(model(**inputs).logits.float(), dim=-1)
            y = torch.nn.functional.one_hot(batch["labels"], p.shape[-1]).float()
            maxes.append(p.max(dim=-1).values)
            errors.append(0.5 * (p - y).abs().sum(dim=-1))
    finally:
        model.train(was_training)
    m, e = torch.cat(maxes), torch.cat(errors)
    return {"mean_max_prob": float(m.mean()), "saturated_share": float((m >= SATURATED).float().mean()),
            "mean_error_signal": float(e.mean()), "examples": int(m.numel())}


def _subset(dataset, n: int, seed: int):
    if len(dataset) <= n:
        return dataset
    return dataset.shuffle(seed=seed).select(range(n))


def frozen_feature_probe(model: nn.Module, loaded, examples: int, config, batch_size: int = 64) -> dict:
    """Linear-probe accuracy of frozen features on a validation subset and the head-norm growth (docstring, 3).

    The probe is fitted exactly as LP-FT's LP stage fits its head (strategies.linear_probe.fit_linear_probe:
    L2 logistic regression, strength chosen by cross-validation over `lp_cs` values, `lp_cv` folds), on
    `examples` training examples."""
    from tunescope.diagnostics.features import extract_features, head_linear, head_norm
    from tunescope.strategies.linear_probe import fit_linear_probe

    train = _subset(loaded.tokenized["train"], examples, config.seed)
    valid = _subset(loaded.tokenized["validation"], examples, config.seed)
    tx, ty = extract_features(model, train, loaded.collator, batch_size)
    vx, vy = extract_features(model, valid, loaded.collator, batch_size)
    num_classes = int(loaded.data.num_labels)
    fit = fit_linear_probe(tx.numpy(), ty.numpy(), num_classes, cs=config.lp_cs, cv=config.lp_cv, seed=config.seed,
                           fit_intercept=head_linear(model).bias is not None)
    accuracy = float(((vx.numpy() @ fit.weight.T + fit.bias).argmax(1) == vy.numpy()).mean())
    _values, counts = np.unique(vy.numpy(), return_counts=True)
    init = head_norm(model)
    lp_norm = float(np.linalg.norm(fit.weight))
    return {"accuracy": accuracy, "majority_accuracy": float(counts.max() / counts.sum()),
            "cv_accuracy": fit.cv_accuracy, "strength": fit.strength,
            "head_norm_init": init, "head_norm_lp": lp_norm,
            "head_norm_growth": lp_norm / init if init > 0 else float("inf"),
            "train_examples": len(train), "validation_examples": len(valid)}


def measure(model: nn.Module, loaded, config) -> dict:
    """All four measurements of the pre-trained `model` (left as it was) for the plan's rules."""
    from tunescope.diagnostics.layerwise import diagnose
    from tunescope.diagnostics.options import draw_probe
    from tunescope.diagnostics.sparsity import gradient_sparsity

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    probe = draw_probe(config, loaded.tokenized["train"], loaded.tokenizer, loaded.collator)
    layers, _ = diagnose(model, probe, width=config.inflection_width)
    seconds["layers"] = time.perf_counter() - start

    start = time.perf_counter()
    saturation = output_saturation(model, probe)
    seconds["saturation"] = time.perf_counter() - start

    start = time.perf_counter()
    features = frozen_feature_probe(model, loaded, config.plan_probe_examples, config,
                                    batch_size=config.eval_batch_size)
    seconds["features"] = time.perf_counter() - start

    start = time.perf_counter()
    sparse = gradient_sparsity(model, probe, fractions=(SPARSITY_FRACTION,))
    sparsity = {"fraction": SPARSITY_FRACTION, "top_share": sparse.overall[SPARSITY_FRACTION],
                "entries_for_99": sparse.entries_for_99, "num_params": sparse.num_params}
    seconds["sparsity"] = time.perf_counter() - start
    return {"layers": layers, "saturation": saturation, "features": features, "sparsity": sparsity,
            "num_layers": len(layers["layers"]), "seconds": {k: round(v, 2) for k, v in seconds.items()}}
