"""The length-grouped training order depends on (seed, epoch) only, so a run resumed mid-epoch sees the batches an
uninterrupted run would (tests/integration/test_plan_cli.py checks the whole planned run end to end)."""

from __future__ import annotations

import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from tunescope.training.trainer import EpochSeededLengthGroupedSampler

LENGTHS = [5, 17, 3, 9, 30, 12, 8, 21, 4, 16, 11, 7, 25, 2, 14, 6] * 4


def test_the_order_ignores_the_global_rng_and_changes_with_the_epoch():
    sampler = EpochSeededLengthGroupedSampler(4, LENGTHS, seed=3)
    torch.manual_seed(0)
    first = list(sampler)
    torch.manual_seed(12345)  # a resumed run restores another global RNG state
    torch.rand(100)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == sorted(first) == list(range(len(LENGTHS)))
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_it_is_transformers_length_grouping_with_a_seeded_generator():
    sampler = EpochSeededLengthGroupedSampler(4, LENGTHS, seed=3)
    sampler.set_epoch(2)
    expected = get_length_grouped_indices(LENGTHS, 4, generator=torch.Generator().manual_seed(3 * 100_003 + 2))
    assert list(sampler) == expected


def test_the_trainer_uses_it_for_group_by_length(tiny_model_dir, toy_csv, tmp_path):
    from tunescope.experiments.finetune_config import FinetuneConfig
    from tunescope.strategies import STRATEGIES
    from tunescope.tasks import TASKS
    from tunescope.training.trainer import build_trainer

    config = FinetuneConfig(model=str(tiny_model_dir["bert"]), data=str(toy_csv), group_by_length=True, seed=5)
    loaded = TASKS.get("classification").load(config)
    trainer = build_trainer(loaded.model, loaded.tokenizer, loaded.tokenized, loaded.collator, config, tmp_path,
                            learning_rate=1e-4, strategy=STRATEGIES.get("full"))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, EpochSeededLengthGroupedSampler) and sampler.seed == 5
    assert sampler.lengths == [len(ids) for ids in loaded.tokenized["train"]["input_ids"]]
