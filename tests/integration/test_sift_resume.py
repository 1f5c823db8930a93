"""Resuming a SIFT run from a Trainer checkpoint continues exactly where the uninterrupted run went."""

from __future__ import annotations

import shutil

import torch

from tunescope.experiments.finetune import FinetuneConfig, finetune
from tunescope.models.load import load_classifier


def test_sift_resume_matches_uninterrupted_run(tiny_model_dir, toy_csv, tmp_path):
    config = FinetuneConfig(model=str(tiny_model_dir["llama"]), data=str(toy_csv), strategy="sift", max_steps=6,
                            save_steps=3, batch_size=16, learning_rate=1e-2, sift_rate=0.1, limit=64,
                            feature_change=False, warmup_ratio=0.0)
    run = tmp_path / "run"
    finetune(config, run, write_report=False)
    final = {n: p.detach().clone() for n, p in load_classifier(str(run / "checkpoints" / "final"), 2)[0]
             .named_parameters()}
    # Pretend the run died after step 3: drop everything written later, then resume.
    shutil.rmtree(run / "checkpoints" / "checkpoint-6")
    shutil.rmtree(run / "checkpoints" / "final")
    finetune(config, run, resume=True, write_report=False)
    resumed = dict(load_classifier(str(run / "checkpoints" / "final"), 2)[0].named_parameters())
    for n, p in final.items():
        torch.testing.assert_close(resumed[n], p, atol=1e-6, rtol=1e-5)
    base = dict(load_classifier(str(tiny_model_dir["llama"]), 2)[0].named_parameters())
    assert any(not torch.equal(base[n], p) for n, p in final.items() if "q_proj" in n)
