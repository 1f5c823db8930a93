"""Fine-tuning strategies: each prepares the model, says what is trainable and how it is saved.

Strategies register themselves in STRATEGIES; importing this package imports every strategy module
listed in STRATEGY_MODULES (add one line there for a new strategy).
"""

from __future__ import annotations

import importlib

from tunescope.strategies.base import STRATEGIES, Strategy, StrategyContext

STRATEGY_MODULES = (
    "tunescope.strategies.full",
    "tunescope.strategies.lora",
    "tunescope.strategies.lora_inflection",
    "tunescope.strategies.head",
    "tunescope.strategies.lp_ft",
    "tunescope.strategies.sift.strategy",
)

for _module in STRATEGY_MODULES:
    importlib.import_module(_module)

__all__ = ["STRATEGIES", "Strategy", "StrategyContext"]
