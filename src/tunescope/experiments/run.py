"""`tunescope run`: the main job - diagnose -> select inflection layers -> fine-tune -> evaluate -> report.

Default: minilm-l6 on rotten_tomatoes. The pre-trained model's per-layer diagnostics are always recorded and the
inflection layers selected before training (results.json `diagnostics.*`, report section with the band marked);
after training, Delta-CKA per layer against the pre-trained model. When the config asks for plain `lora` without
explicit `layers`, `RUN_STRATEGY` decides where the adapters go: "lora" (all layers) until LoRA at the inflection band
alone has been measured to reach >= 0.78 test accuracy within the 10-minute budget (see docs/results/inflection.md:
on the shared CPU that measurement could not be made), "lora-inflection" afterwards. `--strategy lora-inflection`
always puts them only at the band. Any other strategy is run as given, still diagnosed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tunescope.experiments.finetune import FinetuneConfig, finetune

# The strategy `run` uses for the default LoRA request (see the module docstring and docs/results/inflection.md).
RUN_STRATEGY = "lora"


def run_config(config: FinetuneConfig) -> FinetuneConfig:
    """The config `run` actually trains with: diagnostics on; default LoRA -> RUN_STRATEGY."""
    changes: dict = {"diagnose": True}
    if config.strategy == "lora" and config.layers is None:
        changes["strategy"] = RUN_STRATEGY
    return dataclasses.replace(config, **changes)


def main_job(config: FinetuneConfig, run_dir: str | Path, *, resume: bool = False) -> dict:
    """Diagnose, select, fine-tune and evaluate with `config` (see module docstring); returns results."""
    return finetune(run_config(config), run_dir, resume=resume)
