"""Every registered strategy on tiny BERT / GPT-2 / Llama: loss falls, frozen parameters stay bit-identical,
save -> load gives identical logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunescope.experiments.finetune import FinetuneConfig, finetune
from tunescope.io import read_jsonl
from tunescope.models.layers import head_parameter_names
from tunescope.models.load import load_classifier
from tunescope.models.tiny import TINY_ARCHITECTURES
from tunescope.strategies import STRATEGIES
from tunescope.training.addons import AddonBase
from tunescope.training.evaluate import predict_logits

from .strategy_table import PER_ARCH, STRATEGY_ROWS


def test_every_registered_strategy_has_a_row():
    assert {row[0] for row in STRATEGY_ROWS} == set(STRATEGIES.names())


def _canonical(name: str) -> str:
    """peft parameter name -> the original model's name (frozen copies only)."""
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".base_layer", "").replace(".original_module", "")


class CaptureRun(AddonBase):
    """A training add-on of the test's own: keeps the RunState for the assertions."""

    name = "capture"

    def after_train(self, run):
        self.run = run


@pytest.fixture
def capture_run():
    return CaptureRun()


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
@pytest.mark.parametrize("strategy,overrides", STRATEGY_ROWS, ids=[r[0] for r in STRATEGY_ROWS])
def test_strategy_contract(strategy, overrides, arch, tiny_model_dir, toy_csv, tmp_path, capture_run):
    settings = {"epochs": 6, **overrides, **PER_ARCH.get((strategy, arch), {})}
    config = FinetuneConfig(model=str(tiny_model_dir[arch]), data=str(toy_csv), strategy=strategy, batch_size=16,
                            logging_steps=2, warmup_ratio=0.0, lora_dropout=0.0, **settings)
    results = finetune(config, tmp_path, write_report=False, extra_addons=[capture_run])
    run = capture_run.run
    assert results.model is run.model and results.trainer is run.trainer  # the notebook API hands both back

    # 1. the loss falls on the learnable toy task (`head` = LP alone takes no gradient step: its probe must fit)
    if not STRATEGIES.get(strategy).trains:
        assert results["lp"]["lp_train_accuracy"] > 0.6, results["lp"]  # chance is 0.5; random tiny features
    else:
        losses = [m["loss"] for m in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in m]
        quarter = max(len(losses) // 4, 1)
        assert np.mean(losses[-quarter:]) < 0.85 * np.mean(losses[:quarter]), losses

    # 2. frozen parameters are bit-identical to the pre-trained ones
    pristine = dict(run.base_model_factory().named_parameters())
    frozen = [(n, p) for n, p in run.model.named_parameters() if not p.requires_grad]
    # LP strategies (head, lp-ft, lp-lora) install a fitted head before freezing: the head is not pre-trained.
    fitted = {_canonical(n) for n in head_parameter_names(run.model)} if "lp" in results else set()
    for name, p in frozen:
        key = _canonical(name)
        if key in pristine and key not in fitted:
            assert torch.equal(p, pristine[key]), name
    trainable = results["trainable_params"]
    assert 0 < trainable <= results["total_params"]

    # 3. save -> load gives identical logits
    loaded, _ = load_classifier(str(tmp_path / "checkpoints" / "final"), num_labels=2)
    logits, _ = predict_logits(loaded, run.tokenized["test"], run.collator)
    saved = np.load(tmp_path / "logits.npz")["test_logits"]
    np.testing.assert_array_equal(logits, saved)  # bit-identical: same weights, same batches, same kernels
