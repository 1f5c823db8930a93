"""One module per subcommand; each defines register(subparsers).

COMMAND_CONFIGS names the config dataclass behind each config-driven command ("module:Class", imported only when
asked for, so `tunescope --help` stays light); `config_class(command)` resolves it.
"""

from __future__ import annotations

import importlib

COMMAND_CONFIGS: dict[str, str] = {
    "run": "tunescope.experiments.finetune:FinetuneConfig",
    "finetune": "tunescope.experiments.finetune:FinetuneConfig",
    "sft": "tunescope.experiments.sft:SFTConfig",
    "compare": "tunescope.experiments.finetune:FinetuneConfig",
    "diagnose": "tunescope.experiments.diagnose:DiagnoseConfig",
    "transfer": "tunescope.experiments.transfer:TransferConfig",
    "ntk": "tunescope.experiments.ntk:NTKConfig",
    "sparsity": "tunescope.experiments.sparsity:SparsityConfig",
    "jump": "tunescope.experiments.jump:JumpConfig",
    "pretrain": "tunescope.experiments.pretrain:PretrainConfig",
    "landscape": "tunescope.experiments.landscape:LandscapeConfig",
}


def config_class(command: str) -> type:
    """The config dataclass of `command` (KeyError for commands without one)."""
    module, name = COMMAND_CONFIGS[command].split(":")
    return getattr(importlib.import_module(module), name)
