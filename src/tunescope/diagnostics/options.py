"""Probe-batch and inflection-band settings, shared by `diagnose`, `lora-inflection` and the diagnose-first runs."""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check


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
