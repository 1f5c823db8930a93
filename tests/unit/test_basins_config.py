"""The basins experiment's settings: validation and the per-strategy fine-tuning configuration."""

from __future__ import annotations

import pytest

from tunescope.errors import UserError
from tunescope.experiments import basins


@pytest.mark.parametrize("key,value", [("sift_rate", 0.0), ("sift_rate", 1.5), ("sift_learning_rate", 0.0),
                                       ("num_directions", 0), ("sigmas", [-0.1])])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(UserError, match=key):
        basins.BasinsConfig(**{key: value})


@pytest.mark.parametrize("strategy,expected_lr", [("full", 2 * 5e-5), ("lora", 2 * 5e-4), ("sift", 3e-3)])
def test_finetune_config_per_strategy(monkeypatch, tmp_path, strategy, expected_lr):
    seen = {}

    def fake_finetune(ft, run_dir, write_report, **how):  # how: resume / overwrite, chosen by run_sub_run
        seen["config"] = ft
        return {}

    import tunescope.experiments.finetune as finetune_module

    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    config = basins.BasinsConfig(sift_rate=0.031, sift_learning_rate=3e-3)
    basins._finetune(config, strategy, 0.01, tmp_path / strategy)
    ft = seen["config"]
    assert ft.strategy == strategy
    assert ft.learning_rate == pytest.approx(expected_lr)
    assert ft.sift_rate == 0.031 and ft.noise_sigma == 0.01
