"""Fine-tuning strategies: each prepares the model, says what is trainable and how it is saved.

Every module of this package (and of its sub-packages) is imported the first time one of the names below is read
(`from tunescope.strategies import STRATEGIES`), and the strategies register themselves in STRATEGIES when their
module is imported: adding a strategy is one module with its `STRATEGIES.register(...)` line, plus its name in
strategies/options.py STRATEGY_NAMES and one row in tests/contract/strategy_table.py.

Resolved on first use (PEP 562), not at import: importing a light submodule (strategies.options, sift.config:
the option groups the CLI builds its flags from) must not load torch and peft through this file.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["STRATEGIES", "Strategy", "StrategyBase", "StrategyContext"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module(f"{__name__}.base")
    for info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
        importlib.import_module(info.name)
    values = {n: getattr(base, n) for n in __all__}
    globals().update(values)  # cache: later reads are plain attributes
    return values[name]
