"""FinetuneConfig: what defines a fine-tuning run (`tunescope finetune`, `run`, `compare`), apart from its recipe.

Light on purpose: the standard library and the option groups only (the strategy registry is imported inside
validate), so the CLI builds `tunescope finetune --help` from this class without loading torch, peft or
transformers. experiments/finetune.py re-exports it: `from tunescope.experiments.finetune import FinetuneConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import check
from tunescope.diagnostics.options import ProbeOptions
from tunescope.strategies.options import LinearProbeOptions, LoraOptions
from tunescope.strategies.sift.config import SiftOptions
from tunescope.tasks.options import TaskOptions
from tunescope.training.options import NoiseOptions, TrainingOptions


@dataclass
class FinetuneConfig(NoiseOptions, SiftOptions, LinearProbeOptions, ProbeOptions, LoraOptions, TrainingOptions,
                     TaskOptions):
    """Everything that defines a fine-tuning run (saved as the run's config.yaml).

    Composed from the option groups (each declared and validated once): the task (model, data, columns,
    max_length, limit, seed), the Trainer, LoRA, the probe batches, the linear probe, SIFT and GO noise.
    """

    strategy: str = "lora"
    """Fine-tuning strategy (see `tunescope finetune --help` for the registered ones)."""
    diagnose: bool = False
    """Record per-layer diagnostics of the pre-trained model before training and Delta-CKA after (on in `run`)."""
    ntk_samples: int = 0
    """Before training, compute the eNTK split P + F and the FT ratio on this many training examples (0: off)."""
    calibration_bins: int = 15
    """Equal-width confidence bins for ECE / MCE and the reliability diagram."""
    feature_change: bool = True
    """After training, compare pre-trained and fine-tuned features phi(x) on the test split (cosine, L2)."""

    def validate(self) -> None:
        check(self.ntk_samples >= 0, "ntk_samples", self.ntk_samples, "an integer >= 0 (0: off)")
        check(self.calibration_bins >= 1, "calibration_bins", self.calibration_bins, "a positive integer")
        # Imported here: the strategies load torch and peft, which building --help must not.
        from tunescope.strategies import STRATEGIES

        STRATEGIES.get(self.strategy)  # unknown strategy -> exit 2 with "did you mean"
