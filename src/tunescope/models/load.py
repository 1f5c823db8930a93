"""Load models and tokenizers from a named asset, a local folder, or a hub id.

Weights are loaded from safetensors where present (transformers itself loads legacy .bin files with
`torch.load(weights_only=True)`); remote code is never trusted unless the caller asks.
A folder holding a PEFT adapter (adapter_config.json, e.g. a tunescope checkpoint) loads its base
model and then the adapter.

Before any weights are read, the model type is checked from its config and the model class the Auto mapping
resolves it to (`check_architecture`): a class that does not route attention through transformers' attention
interface, or whose structure has no discoverable block list / attention modules, is refused with a UserError
naming the model type and the reason. Before that, a local folder's files are checked without reading weights
(models/checkpoint_check.py: safetensors headers, adapter / delta configs, pickle-only folders are refused), and a
config whose `auto_map` names code shipped with the model is refused unless `trust_remote_code` is given.
`model_skeleton` gives the same weightless model to the recipes' preflight (experiments/preflight.py), so a bad
option (LoRA layers, targets, scope) fails before any data or weights are read.

Unless tunescope logs at DEBUG (`tunescope -v`), transformers' load report, warnings and progress bars are silenced
while loading (`quiet_loading`): on bad input the CLI prints one error line, and nothing may come before it.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from tunescope.assets import ASSETS, asset_names, cache_home, fetch
from tunescope.errors import UserError, did_you_mean
from tunescope.models.checkpoint_check import check_checkpoint_folder, read_base_config
from tunescope.models.discovery import family_of_type, unsupported_reason
from tunescope.models.layers import ModelLayout, model_layout

log = logging.getLogger(__name__)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin",
                "sift_delta.safetensors")
# What a recipe loads, by task: the transformers Auto class `model_skeleton` builds (load_classifier,
# load_causal_lm and load_encoder_or_lm's bare encoder use the same classes).
TASK_AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification", "causal-lm": "AutoModelForCausalLM",
                     "hidden-states": "AutoModel"}


def _has_weights(folder: Path) -> bool:
    return any((folder / f).is_file() for f in WEIGHT_FILES) or any(folder.glob("model-*.safetensors"))


def resolve_model_source(name: str) -> str:
    """A loadable source for `name`: a named asset's cached folder, a local folder with weights, or a hub id."""
    if name in asset_names("model"):
        return str(fetch(name))
    if name in asset_names():
        raise UserError(f"{name!r} is a data asset, not a model; model assets: {', '.join(asset_names('model'))}")
    path = Path(name).expanduser()
    if path.is_dir():
        if not _has_weights(path):
            found = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
            raise UserError(f"checkpoint folder {name!r} holds no weights (looked for {', '.join(WEIGHT_FILES[:3])}"
                            f" ...); it contains: {found}")
        check_checkpoint_folder(path, name)  # headers and configs only: a broken file fails here, in one line
        return str(path)
    if path.suffix or name.startswith((".", "/", "~")):
        raise UserError(f"model path {name!r} does not exist")
    return name  # a hub id


def _asset_of_cache_folder(path: Path) -> str | None:
    """The model asset whose cache folder `path` is (a user may pass that folder directly), else None."""
    assets_root = (cache_home() / "assets").resolve()
    resolved = path.resolve()
    if resolved.parent == assets_root and resolved.name in asset_names("model"):
        return resolved.name
    return None


def public_model_id(name: str) -> str:
    """The base-model name a saved adapter records (PEFT's base_model_name_or_path): one a user outside tunescope
    can resolve. A named asset (or its cache folder) -> the hub id its weights come from (`Asset.origin`), since a
    folder under $TUNESCOPE_HOME names nothing on another machine; a local folder -> its absolute path (a relative
    one would depend on the directory the adapter is loaded from); a hub id -> itself."""
    path = Path(name).expanduser()
    asset = name if name in asset_names("model") else (_asset_of_cache_folder(path) if path.is_dir() else None)
    if asset is not None:
        return ASSETS.get(asset).origin or asset
    return str(path.resolve()) if path.is_dir() else name


def checkpoint_base_source(base: str) -> str:
    """A loadable source for the base model a checkpoint records (`base_model_name_or_path`).

    A hub id that is a named asset's `origin` loads that asset's cached copy: tunescope records the origin for
    models it loaded from the asset (see `public_model_id`), and the asset is what they were trained on (for
    smollm2-135m that is the GGUF Q4_1 weights dequantised, not the hub's own weights), offline. Anything else
    resolves as a model name does (`resolve_model_source`).
    """
    asset = next((a for a in asset_names("model") if ASSETS.get(a).origin == base), None)
    return resolve_model_source(asset or base)


def _pretrained_kwargs(source: str, trust_remote_code: bool) -> dict:
    kwargs: dict = {"trust_remote_code": trust_remote_code}
    folder = Path(source)
    if folder.is_dir() and any(folder.glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    return kwargs


def _hub_error(name: str, err: Exception) -> UserError:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return UserError(f"unknown model {name!r}: not a named asset ({', '.join(asset_names('model'))}), not a local "
                     f"folder, and it could not be loaded from the hub ({msg[:160]})."
                     + did_you_mean(name, asset_names("model")))


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence transformers' logging (load report), Python warnings and progress bars for the block, unless
    tunescope logs at DEBUG (`tunescope -v`).

    On bad input the CLI prints exactly one error line; a load report or a "Loading weights" bar printed by a load
    that came before the error would break that, and the report's usual news (a freshly initialised
    classification head) is expected when fine-tuning.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(source: str, trust_remote_code: bool = False):
    """The tokenizer of `source`, with a pad token (eos for decoders) and right padding."""
    from transformers import AutoTokenizer

    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "right"
    return tok


def _adapter_base(folder: Path) -> str | None:
    """The base model a PEFT adapter or SIFT delta folder was trained on (None for a full model or a hub id)."""
    found = read_base_config(folder) if folder.is_dir() else None  # validated: a JSON object naming its base
    return found["base_model_name_or_path"] if found else None


def _adapter_kind(folder: Path) -> str:
    return "SIFT sparse delta" if (folder / "sift_config.json").is_file() else "PEFT adapter"


def _refuse_adapter(name: str, source: str) -> None:
    """UserError when `source` is an adapter / sparse-delta folder where a full model is expected."""
    base = _adapter_base(Path(source))
    if base is None:
        return
    raise UserError(f"model {name!r} is a {_adapter_kind(Path(source))} of base model {base!r}, not a full model: "
                    f"pass the base model {base!r} here, or merge the adapter into it once and pass the saved folder "
                    "(peft: PeftModel.from_pretrained(base_model, FOLDER).merge_and_unload().save_pretrained(DIR))")


def _check_adapter_task(name: str, source: str) -> None:
    """A classifier can take a sequence-classification adapter (or an untyped one), not e.g. a causal-LM one."""
    folder = Path(source)
    task_type = (read_base_config(folder) or {}).get("task_type") if folder.is_dir() else None
    if task_type not in (None, "SEQ_CLS"):
        raise UserError(f"model {name!r} is a PEFT adapter of task type {task_type!r} for base model "
                        f"{_adapter_base(folder)!r}; this command needs a classifier: pass a full model or a "
                        "SEQ_CLS adapter (a tunescope fine-tuning run's checkpoints/final)")


def _check_remote_code(name: str, source: str, trust_remote_code: bool) -> None:
    """Refuse a config whose `auto_map` points at code shipped with the model, unless the caller trusts it."""
    if trust_remote_code:
        return
    from transformers import PretrainedConfig

    try:
        raw, _ = PretrainedConfig.get_config_dict(source)
    except (OSError, ValueError):
        return  # unreadable: AutoConfig reports it with the usual message
    auto_map = raw.get("auto_map")
    if auto_map:
        shown = ", ".join(sorted(auto_map)) if isinstance(auto_map, dict) else str(auto_map)
        raise UserError(f"model {name!r} ships its own code (config.json auto_map: {shown}), which tunescope does "
                        "not run unless you pass --trust-remote-code (trust_remote_code=true); pass it only for a "
                        "source you trust")


def _config(name: str, source: str, trust_remote_code: bool, **overrides):
    from transformers import AutoConfig

    _check_remote_code(name, source, trust_remote_code)
    try:
        with quiet_loading():
            return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **overrides)
    except (OSError, ValueError) as e:
        if Path(source).is_dir():
            raise UserError(f"could not load model from folder {source!r}: {str(e).splitlines()[0]}") from None
        raise _hub_error(name, e) from None


def _auto_class(task: str):
    import transformers

    if task not in TASK_AUTO_CLASSES:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASK_AUTO_CLASSES)}")
    return getattr(transformers, TASK_AUTO_CLASSES[task])


def _skeleton(name: str, source: str, auto_class, *, trust_remote_code: bool = False,
              **config_overrides) -> nn.Module | None:
    """The model `auto_class` builds for `source`, on the meta device (no memory, no weights), after the class
    checks; None for a remote-code class the Auto mapping does not know or a config the meta build cannot take."""
    config = _config(name, source, trust_remote_code, **config_overrides)
    model_type = getattr(config, "model_type", None)
    model_class = auto_class._model_mapping.get(type(config), None)
    if model_class is None:
        if trust_remote_code and getattr(config, "auto_map", None):
            return None
        raise UserError(f"model {name!r} has unsupported architecture {model_type!r}: transformers has no "
                        f"{auto_class.__name__} class for it")
    reason = unsupported_reason(model_class)
    if reason:
        raise UserError(f"model {name!r} has unsupported architecture {model_type!r}: {reason}")
    try:
        with torch.device("meta"), quiet_loading():
            return model_class._from_config(config)
    except Exception as e:  # noqa: BLE001 - an exotic config (quantisation ...) the meta build cannot take:
        log.debug("no weightless preflight for %s (%s); checking after loading", name, e)  # _check_loaded does
        return None


def check_architecture(name: str, source: str, auto_class, *, trust_remote_code: bool = False,
                       **config_overrides) -> ModelLayout | None:
    """Refuse an unsupported model type BEFORE its weights are loaded; returns the layout of a weightless copy.

    Reads only the config (AutoConfig), resolves the class `auto_class` (AutoModelForSequenceClassification,
    AutoModelForCausalLM, AutoModel) maps it to, checks that class's `_supports_attention_backend`, then builds
    the model on the meta device (no memory, no weights) and runs the layout discovery on it. Returns None
    for remote-code classes the Auto mapping does not know (those are checked after loading).
    """
    skeleton = _skeleton(name, source, auto_class, trust_remote_code=trust_remote_code, **config_overrides)
    if skeleton is None:
        return None
    try:
        return model_layout(skeleton)
    except UserError as e:
        raise UserError(f"model {name!r}: {e}") from None


def model_skeleton(name: str, task: str = "classification", *, trust_remote_code: bool = False) -> nn.Module | None:
    """The model the loader of `task` would build for `name`, on the meta device, from its config alone.

    task: "classification" (load_classifier: a PEFT / SIFT folder stands for its base model), "causal-lm"
    (load_causal_lm) or "hidden-states" (load_encoder_or_lm); the last two refuse an adapter folder as they do.
    Every check of loading that needs no weights runs: the name resolves, the folder's files are intact, no
    untrusted remote code, the architecture is supported and its blocks / attention are discovered. Returns None
    when only loading can tell (remote-code classes, exotic configs). Its parameters have shapes but no data.
    """
    source = resolve_model_source(name)
    if task == "classification":
        _check_adapter_task(name, source)
        base = _adapter_base(Path(source))
        source = checkpoint_base_source(base) if base else source
    else:
        _refuse_adapter(name, source)
    skeleton = _skeleton(name, source, _auto_class(task), trust_remote_code=trust_remote_code)
    if skeleton is None:
        return None
    _check_loaded(skeleton, name)
    if task == "hidden-states" and model_layout(skeleton).family == "decoder":
        # load_encoder_or_lm loads a decoder as a causal LM: the same model, plus its LM head
        skeleton = _skeleton(name, source, _auto_class("causal-lm"), trust_remote_code=trust_remote_code)
    return skeleton


def _check_loaded(model: nn.Module, name: str) -> None:
    """The same discovery on the loaded model (it matters for remote-code classes the preflight skipped)."""
    try:
        model_layout(model)
    except UserError as e:
        raise UserError(f"model {name!r}: {e}") from None


def _load_error(name: str, source: str, err: Exception) -> UserError:
    """The one-line UserError for a from_pretrained failure of `source` (a folder, or a hub id)."""
    if Path(source).is_dir():
        return UserError(f"could not load model from folder {source!r}: {str(err).splitlines()[0]}")
    return _hub_error(name, err)


def load_classifier(name: str, num_labels: int, *, label_names: list[str] | None = None,
                    dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer) for sequence classification with `num_labels` classes.

    A pre-trained checkpoint without a classification head gets a freshly initialised one (transformers' load
    report says so; it is silenced unless -v, since that is expected for fine-tuning).
    """
    from transformers import AutoModelForSequenceClassification

    source = resolve_model_source(name)
    _check_adapter_task(name, source)
    adapter_base = _adapter_base(Path(source))
    base_source = checkpoint_base_source(adapter_base) if adapter_base else source
    check_architecture(name, base_source, AutoModelForSequenceClassification, trust_remote_code=trust_remote_code,
                       num_labels=num_labels)
    kwargs = _pretrained_kwargs(base_source, trust_remote_code)
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    try:
        tokenizer = load_tokenizer(source if not adapter_base else base_source, trust_remote_code)
        with quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                base_source, num_labels=num_labels, dtype=dtype, ignore_mismatched_sizes=True, **kwargs)
    except UserError:
        raise
    except (OSError, ValueError) as e:
        raise _load_error(name, base_source, e) from None
    _check_loaded(model, name)
    model.config.pad_token_id = tokenizer.pad_token_id
    # What get_peft_model records as base_model_name_or_path (peft reads model.name_or_path): never a cache path.
    model.name_or_path = public_model_id(adapter_base or name)
    if adapter_base and (Path(source) / "sift_config.json").is_file():
        from tunescope.models.sparse_delta import (
            load_delta,  # the format lives with the models
        )

        load_delta(source).merge(model)
    elif adapter_base:
        from peft import PeftModel

        with quiet_loading():
            model = PeftModel.from_pretrained(model, source, is_trainable=False)
    return model, tokenizer


def load_causal_lm(name: str, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer) for causal language modelling, from a full model (an adapter folder is refused: see
    tasks.causal_lm.load_lm_checkpoint for base + adapter)."""
    from transformers import AutoModelForCausalLM

    source = resolve_model_source(name)
    _refuse_adapter(name, source)
    check_architecture(name, source, AutoModelForCausalLM, trust_remote_code=trust_remote_code)
    try:
        tokenizer = load_tokenizer(source, trust_remote_code)
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype,
                                                         **_pretrained_kwargs(source, trust_remote_code))
    except (OSError, ValueError) as e:
        raise _load_error(name, source, e) from None
    _check_loaded(model, name)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_encoder_or_lm(name: str, *, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) using the architecture's natural head-less-friendly class: causal LM for decoders,
    the bare encoder (AutoModel) for encoders. Used by instruments that only need hidden states."""
    from transformers import AutoModel

    source = resolve_model_source(name)
    _refuse_adapter(name, source)
    layout = check_architecture(name, source, AutoModel)
    family = layout.family if layout is not None else family_of_type(_config(name, source, False).model_type)
    if family == "decoder":
        return load_causal_lm(name, dtype=dtype)
    try:
        tokenizer = load_tokenizer(source)
        with quiet_loading():
            model = AutoModel.from_pretrained(source, dtype=dtype, **_pretrained_kwargs(source, False))
    except (OSError, ValueError) as e:
        raise _load_error(name, source, e) from None
    return model, tokenizer
