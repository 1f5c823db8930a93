"""One module per subcommand; each defines register(subparsers).

COMMAND_CONFIGS names the config dataclass behind each config-driven command ("module:Class"); `config_class(command)`
resolves it, and the commands' register() build their flags from it. Every module named here must be light (the
standard library, tunescope.config and other option modules at module level; torch, transformers, peft ... only
inside functions): `tunescope --help` and `tunescope CMD --help` import all of them, and
tests/unit/test_cli_imports.py checks that no heavy library gets loaded. A recipe whose own imports are heavy keeps
its config in experiments/<recipe>_config.py and re-exports it.
"""

from __future__ import annotations

import importlib

COMMAND_CONFIGS: dict[str, str] = {
    "run": "tunescope.experiments.plan_config:PlanConfig",
    "plan": "tunescope.experiments.plan_config:PlanConfig",
    "finetune": "tunescope.experiments.finetune_config:FinetuneConfig",
    "sft": "tunescope.experiments.sft_config:SFTConfig",
    "compare": "tunescope.experiments.finetune_config:FinetuneConfig",
    "diagnose": "tunescope.experiments.diagnose:DiagnoseConfig",
    "transfer": "tunescope.experiments.transfer:TransferConfig",
    "ntk": "tunescope.experiments.ntk:NTKConfig",
    "sparsity": "tunescope.experiments.sparsity:SparsityConfig",
    "jump": "tunescope.experiments.jump:JumpConfig",
    "pretrain": "tunescope.experiments.pretrain_config:PretrainConfig",
    "landscape": "tunescope.experiments.landscape:LandscapeConfig",
}


def config_class(command: str) -> type:
    """The config dataclass of `command` (KeyError for commands without one)."""
    module, name = COMMAND_CONFIGS[command].split(":")
    return getattr(importlib.import_module(module), name)
