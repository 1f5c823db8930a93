"""PretrainConfig: what defines a `tunescope pretrain` run, apart from its recipe (experiments/pretrain.py).

Light on purpose: the standard library and tunescope.config only (the presets and the JREG forms are imported
inside validate), so the CLI builds `tunescope pretrain --help` from this class without loading torch or
transformers. experiments/pretrain.py re-exports it: `from tunescope.experiments.pretrain import PretrainConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunescope.config import Options, check


@dataclass
class PretrainConfig(Options):
    """A small Llama-style pre-training run (optionally with JREG or GO noise)."""

    preset: str = "tiny"
    """model size: micro (~0.4M), tiny (~1M), mini (~3M), small (~10M), base (~30M parameters)"""
    data: str = "news_text"
    """text corpus: a named asset, a local csv/jsonl/parquet/txt file, or a hub id"""
    text_column: str | None = None
    """column holding the text (default: text/content/document)"""
    tokenizer: str | None = None
    """None = train a byte-level BPE tokenizer on the training documents; or a tokenizer folder / hub id"""
    vocab_size: int = 4096
    """vocabulary size of the trained tokenizer"""
    max_length: int = 128
    """tokens per packed training block"""
    batch_size: int = 16
    """blocks per optimisation step"""
    steps: int = 400
    """optimisation steps"""
    learning_rate: float = 3e-3
    """peak AdamW learning rate (linear warm-up, then cosine decay to 0)"""
    warmup_steps: int = 40
    """linear warm-up steps"""
    weight_decay: float = 0.1
    """decoupled weight decay on matrices (not on norms)"""
    checkpoint_steps: list[int] | None = None
    """steps at which to save + evaluate (default: 0, steps/8, steps/4, steps/2, 3 steps/4, steps)"""
    eval_blocks: int = 32
    """held-out blocks for the held-out loss and the jump profile"""
    jreg: float = 0.0
    """JREG weight lambda (0 = plain LM loss)"""
    jreg_form: str = "jump"
    """JREG form: jump (sum of upward steps of Psi), final (Psi_L), all (mean Psi)"""
    noise_sigma: float = 0.0
    """GO training: loss at theta + eps, eps ~ N(0, sigma^2 I) drawn once per step, gradient applied to theta (0: off)"""
    probe: str | None = "rotten_tomatoes"
    """classification data for the final linear probe (None = no probe)"""
    probe_limit: int = 1000
    """examples per split for the linear probe"""
    limit: int | None = None
    """cap on corpus documents (after shuffling)"""
    heldout_fraction: float = 0.05
    """fraction of documents held out"""
    seed: int = 0
    """seed of initialisation, data order and splits"""
    log_every: int = 10
    """log the training loss every N steps"""

    def validate(self) -> None:
        # Imported here: the presets and the regulariser load torch, which building --help must not.
        from tunescope.models.presets import PRESETS
        from tunescope.training.regularizers import JREG_FORMS

        check(self.preset in PRESETS, "preset", self.preset, "one of " + ", ".join(PRESETS))
        check(self.steps >= 1, "steps", self.steps, "a positive integer")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")
        check(self.max_length >= 8, "max_length", self.max_length, "at least 8")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "a positive number")
        check(0 <= self.warmup_steps, "warmup_steps", self.warmup_steps, "a non-negative integer")
        check(self.eval_blocks >= 1, "eval_blocks", self.eval_blocks, "a positive integer")
        check(self.jreg >= 0 and math.isfinite(self.jreg), "jreg", self.jreg, "a number >= 0")
        check(self.jreg_form in JREG_FORMS, "jreg_form", self.jreg_form, "one of " + ", ".join(JREG_FORMS))
        check(self.noise_sigma >= 0 and math.isfinite(self.noise_sigma), "noise_sigma", self.noise_sigma,
              "a number >= 0 (0: GO training off)")
        check(self.log_every >= 1, "log_every", self.log_every, "a positive integer")
        if self.checkpoint_steps is None:
            s = self.steps
            self.checkpoint_steps = sorted({0, s // 8, s // 4, s // 2, 3 * s // 4, s})
        else:
            bad = [c for c in self.checkpoint_steps if not 0 <= c <= self.steps]
            check(not bad, "checkpoint_steps", self.checkpoint_steps, f"steps between 0 and {self.steps}")
            self.checkpoint_steps = sorted(set(self.checkpoint_steps) | {self.steps})
