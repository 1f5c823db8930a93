"""tunescope: diagnose-first fine-tuning of transformer models.

Five instruments and their remedies in one tool: layer diagnostics + inflection-layer LoRA,
SIFT sparse increment fine-tuning, the final-layer jump + JREG, loss-landscape basins, and
LP-FT seen through the NTK. See README.md for the commands and docs/ for the results.

The notebook API is importable from the top level; names are resolved on first use (PEP 562), so
`import tunescope` stays light and `tunescope --help` does not pay for torch:

    from tunescope import FinetuneConfig, finetune
    results = finetune(FinetuneConfig(strategy="lora", epochs=1), "runs/demo")
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> "module:attribute"
_API: dict[str, str] = {
    "FinetuneConfig": "tunescope.experiments.finetune:FinetuneConfig",
    "finetune": "tunescope.experiments.finetune:finetune",
    "DiagnoseConfig": "tunescope.experiments.diagnose:DiagnoseConfig",
    "diagnose": "tunescope.experiments.diagnose:diagnose_run",
    "DiagnosticsCallback": "tunescope.training.callbacks:DiagnosticsCallback",
    "load_task": "tunescope.tasks:load_task",
    "model_layout": "tunescope.models.layers:model_layout",
    "STRATEGIES": "tunescope.strategies:STRATEGIES",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'tunescope' has no attribute {name!r}")
    module, attribute = _API[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
