"""Preflight: the checks of a recipe's config that need the model's structure, run BEFORE any data or weights load.

A config's own `validate` checks each value alone (ranges, names). What depends on the model - LoRA `layers`
against its block count, `lora_targets` / `sift_targets` / module patterns against its module names, a landscape
`--scope`, a second checkpoint (`diagnose --against`, `landscape --base`) - was otherwise found only after the
data had been read and tokenised and the weights loaded. Preflight builds the model on the meta device from its
config alone (`models.load.model_skeleton`: no weights, no memory, about a second) and runs on it the very functions
the recipe runs later on the real model (`strategies.lora.lora_config_for`, `strategies.sift.config.resolve_targets`,
`landscape.directions.select_scope`), so a bad value gets the same message, only before anything is loaded.

    preflight(config)                                             finetune, ntk: model + the strategy's options
    preflight(config, module_patterns={"targets": config.targets})          sparsity
    preflight(config, model=..., checkpoints={"--against": ...})            diagnose
    preflight(config, model=..., task="causal-lm", checkpoints={"--base": ...})   landscape (also checks --scope)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunescope.errors import UserError
from tunescope.landscape.options import BasinOptions

if TYPE_CHECKING:  # annotations only: the recipes import this module at start-up, so torch / peft load lazily
    from torch import nn


def preflight(config: Any, *, model: str | None = None, task: str = "classification",
              checkpoints: Mapping[str, str | None] | None = None,
              module_patterns: Mapping[str, list[str] | None] | None = None) -> nn.Module | None:
    """Check `config` against the structure of its model; UserError (exit 2) on the first bad value.

    model: the source the recipe will load (default `config.model`; e.g. a run directory's checkpoints/final);
    task: which loader it uses (models.load.TASK_AUTO_CLASSES); checkpoints: other models the recipe loads the same
    way, by flag ({"--against": path}); module_patterns: pattern lists (SIFT matching rules) that must each match a
    weight of the model, by config key. Also checked: the LoRA / SIFT options of `config.strategy`, and `scope` of
    a basin measurement (BasinOptions). Returns the weightless model (None when only loading can tell: remote code).
    """
    from tunescope.models.load import model_skeleton, resolve_model_source

    trust = bool(getattr(config, "trust_remote_code", False))
    name = model or config.model
    skeleton = model_skeleton(name, task, trust_remote_code=trust)
    for flag, other in (checkpoints or {}).items():
        if other:
            _check_other_model(flag, other, task, trust)
    if skeleton is None:
        return None  # a remote-code class: the recipe checks after loading, as before
    check_strategy_options(config, skeleton)
    for key, patterns in (module_patterns or {}).items():
        if patterns:
            check_module_patterns(skeleton, key, patterns)
    if isinstance(config, BasinOptions):
        check_scope(skeleton, config.scope, resolve_model_source(name))
    return skeleton


def _check_other_model(flag: str, name: str, task: str, trust_remote_code: bool) -> None:
    """A second model of the recipe resolves and is loadable (no weights read); errors name its flag."""
    from tunescope.models.load import model_skeleton

    try:
        model_skeleton(name, task, trust_remote_code=trust_remote_code)
    except UserError as e:
        raise UserError(f"bad value {name!r} for {flag}: {e}") from None


def check_strategy_options(config: Any, skeleton: nn.Module) -> None:
    """The model-dependent options of `config.strategy`: LoRA layers / targets, SIFT targets."""
    from tunescope.strategies import STRATEGIES
    from tunescope.strategies.lora import LoraOptions, lora_config_for
    from tunescope.strategies.sift.config import SiftOptions, resolve_targets

    name = getattr(config, "strategy", None)
    if name is None:
        return
    strategy = STRATEGIES.get(name)
    if LoraOptions in strategy.options and isinstance(config, LoraOptions):
        # The same call the strategy makes on the loaded model (apply_lora), so the same message.
        lora_config_for(skeleton, rank=config.lora_rank, alpha=config.lora_alpha, dropout=config.lora_dropout,
                        targets=config.lora_targets, layers=config.layers)
    if SiftOptions in strategy.options and isinstance(config, SiftOptions):
        if config.sift_targets:
            check_module_patterns(skeleton, "sift_targets", config.sift_targets)
        else:
            resolve_targets(skeleton, None)  # the defaults: an architecture without any is refused


def check_module_patterns(skeleton: nn.Module, key: str, patterns: list[str]) -> None:
    """Each pattern must select at least one 2-D weight outside the head (the rules of SIFT targets): a pattern that
    matches nothing is a typo that training would silently ignore. The error names `key` and the pattern."""
    from tunescope.models.layers import default_sift_targets
    from tunescope.strategies.sift.config import resolve_targets

    for pattern in patterns:
        try:
            resolve_targets(skeleton, [pattern])
        except UserError:
            examples = ", ".join(repr(t) for t in default_sift_targets(skeleton)[:2])
            raise UserError(f"bad value {pattern!r} for {key}: no module with a 2-D weight in this model matches it "
                            f"(the head is never a target); expected module-name suffixes such as {examples} or "
                            "globs such as '*.query'") from None


def check_scope(skeleton: nn.Module, scope: str, source: str) -> None:
    """A landscape --scope names parameters of this model (`source`: the resolved folder or hub id it loads)."""
    from tunescope.landscape.directions import SCOPES_HELP, select_scope
    from tunescope.models.sparse_delta import is_delta_folder

    if scope == "sparse":
        if not is_delta_folder(source):
            raise UserError("bad value 'sparse' for --scope: it needs --model to be a tunescope run directory of a "
                            f"sparse (sift) run; for this model use one of {SCOPES_HELP}")
    elif scope == "adapters":
        # The skeleton is the base model; a LoRA checkpoint's adapters exist only once it is loaded.
        if not (Path(source) / "adapter_config.json").is_file():
            raise UserError("bad value 'adapters' for --scope: this model has no LoRA adapter parameters (not a "
                            f"PEFT adapter folder or LoRA run); for this model use one of {SCOPES_HELP}")
    else:
        select_scope(skeleton, scope)
