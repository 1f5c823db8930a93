"""Probe-batch and inflection-band settings, shared by `diagnose`, `lora-inflection` and the diagnose-first runs."""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check

# Defaults the commands' configs name (ntk's sketch_dim, sparsity's fractions), declared here so those configs stay
# importable without torch; diagnostics/ntk.py and diagnostics/sparsity.py import them from here.
DEFAULT_SKETCH_DIM = 65536
"""Count-sketch width m of the eNTK's F matrix (relative error of its entries ~ sqrt(2 / m))."""
DEFAULT_FRACTIONS = (0.001, 0.01, 0.05, 0.1)
"""Top fractions p of a gradient's entries whose share of its squared norm the sparsity measurement reports."""


@dataclass
class ProbeOptions(Options):
    """Which probe batches the per-layer diagnostics see, and how wide the selected band is."""

    probe_batches: int = 2
    """Probe batches (drawn from the training split) for the per-layer diagnostics."""
    probe_batch_size: int = 16
    """Examples per probe batch."""
    inflection_width: int | None = None
    """Width w of the inflection band (default ceil(num_layers / 4))."""

    def validate(self) -> None:
        check(self.probe_batches >= 1, "probe_batches", self.probe_batches, "a positive integer")
        check(self.probe_batch_size >= 1, "probe_batch_size", self.probe_batch_size, "a positive integer")
        check(self.inflection_width is None or self.inflection_width >= 1, "inflection_width",
              self.inflection_width, "a positive integer")


def draw_probe(config: ProbeOptions, train_dataset, tokenizer, collate=None) -> list[dict]:
    """The probe batches a config asks for: `probe_batches` seeded draws (config.seed) of `probe_batch_size`
    examples from the tokenised training split - the one place diagnose, the diagnostics add-on and
    lora-inflection draw them, so they all see the same examples. `collate`: the task's collator (default: the
    classification one; SFT passes trl's, which keeps the labels -100 outside the completion)."""
    from tunescope.data.tokenize import probe_batches

    return probe_batches(train_dataset, tokenizer, batch_size=config.probe_batch_size,
                         num_batches=config.probe_batches, seed=config.seed, collate=collate)
