"""tunescope: diagnose-first fine-tuning of transformer models.

Five instruments and their remedies in one tool: layer diagnostics + inflection-layer LoRA,
SIFT sparse increment fine-tuning, the final-layer jump + JREG, loss-landscape basins, and
LP-FT seen through the NTK. See README.md for the commands and docs/ for the results.

The notebook API is importable from the top level; names are resolved on first use (PEP 562), so
`import tunescope` stays light and `tunescope --help` does not pay for torch:

    from tunescope import FinetuneConfig, finetune
    result = finetune(FinetuneConfig(strategy="lora", epochs=1), "runs/demo")
    result["eval"]["accuracy"], result.model, result.trainer   # the results dict, the trained model, the Trainer

A name whose module is not part of this installation (e.g. `plan` before experiments/plan.py existed) raises an
AttributeError that says which module it needs, not an ImportError from deep inside.
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
    "PlanConfig": "tunescope.experiments.plan:PlanConfig",
    "plan": "tunescope.experiments.plan:plan",
    "DiagnosticsCallback": "tunescope.training.callbacks:DiagnosticsCallback",
    "load_task": "tunescope.tasks:load_task",
    "model_layout": "tunescope.models.layers:model_layout",
    "STRATEGIES": "tunescope.strategies:STRATEGIES",
}

__all__ = ["__version__"]
__all__ += list(_API)  # the names resolved lazily by __getattr__


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'tunescope' has no attribute {name!r}")
    module, attribute = _API[name].split(":")
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:  # the module exists but lacks one of its own dependencies: that error is the news
            raise
        raise AttributeError(f"tunescope.{name} is not available in this installation: it needs module {module}, "
                             "which is missing") from None
    if not hasattr(found, attribute):
        raise AttributeError(f"tunescope.{name} is not available in this installation: module {module} has no "
                             f"{attribute!r}")
    value = getattr(found, attribute)
    globals()[name] = value  # cache: the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
