"""Fine-tuning strategies: each prepares the model, says what is trainable and how it is saved.

Every module of this package (and of its sub-packages) is imported here, and the strategies register
themselves in STRATEGIES when their module is imported: adding a strategy is one module with its
`STRATEGIES.register(...)` line, plus one row in tests/contract/strategy_table.py.
"""

from __future__ import annotations

import importlib
import pkgutil

from tunescope.strategies.base import (
    STRATEGIES,
    Strategy,
    StrategyBase,
    StrategyContext,
)

for _info in pkgutil.walk_packages(__path__, prefix=__name__ + "."):
    importlib.import_module(_info.name)

__all__ = ["STRATEGIES", "Strategy", "StrategyBase", "StrategyContext"]
