"""Load models and tokenizers from a named asset, a local folder, or a hub id.

Weights are loaded from safetensors where present (transformers itself loads legacy .bin files with
`torch.load(weights_only=True)`); remote code is never trusted unless the caller asks.
A folder holding a PEFT adapter (adapter_config.json, e.g. a tunescope checkpoint) loads its base
model and then the adapter.

Before any weights are read, the model type is checked from its config and the model class the Auto mapping
resolves it to (`check_architecture`): a class that does not route attention through transformers' attention
interface, or whose structure has no discoverable block list / attention modules, is refused with a UserError
naming the model type and the reason.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from tunescope.assets import asset_names, fetch
from tunescope.errors import UserError, did_you_mean
from tunescope.models.discovery import family_of_type, unsupported_reason
from tunescope.models.layers import ModelLayout, model_layout

log = logging.getLogger(__name__)
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin",
                "sift_delta.safetensors")


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
        return str(path)
    if path.suffix or name.startswith((".", "/", "~")):
        raise UserError(f"model path {name!r} does not exist")
    return name  # a hub id


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


def load_tokenizer(source: str, trust_remote_code: bool = False):
    """The tokenizer of `source`, with a pad token (eos for decoders) and right padding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "right"
    return tok


def _adapter_base(folder: Path) -> str | None:
    cfg = folder / "adapter_config.json"
    if not cfg.is_file():
        cfg = folder / "sift_config.json"  # a SIFT sparse delta (issue 5): base model + indices/values
    if not cfg.is_file():
        return None
    return json.loads(cfg.read_text()).get("base_model_name_or_path")


def _config(name: str, source: str, trust_remote_code: bool, **overrides):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **overrides)
    except (OSError, ValueError) as e:
        if Path(source).is_dir():
            raise UserError(f"could not load model from folder {source!r}: {str(e).splitlines()[0]}") from None
        raise _hub_error(name, e) from None


def check_architecture(name: str, source: str, auto_class, *, trust_remote_code: bool = False,
                       **config_overrides) -> ModelLayout | None:
    """Refuse an unsupported model type BEFORE its weights are loaded; returns the layout of a weightless copy.

    Reads only the config (AutoConfig), resolves the class `auto_class` (AutoModelForSequenceClassification,
    AutoModelForCausalLM, AutoModel) maps it to, checks that class's `_supports_attention_backend`, then builds
    the model on the meta device (no memory, no weights) and runs the layout discovery on it. Returns None
    for remote-code classes the Auto mapping does not know (those are checked after loading).
    """
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
        with torch.device("meta"):
            skeleton = model_class._from_config(config)
    except Exception as e:  # noqa: BLE001 - an exotic config (quantisation ...) the meta build cannot take:
        log.debug("no weightless preflight for %s (%s); checking after loading", name, e)  # _check_loaded does
        return None
    try:
        return model_layout(skeleton)
    except UserError as e:
        raise UserError(f"model {name!r}: {e}") from None


def _check_loaded(model: nn.Module, name: str) -> None:
    """The same discovery on the loaded model (it matters for remote-code classes the preflight skipped)."""
    try:
        model_layout(model)
    except UserError as e:
        raise UserError(f"model {name!r}: {e}") from None


def load_classifier(name: str, num_labels: int, *, label_names: list[str] | None = None,
                    dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer) for sequence classification with `num_labels` classes.

    A pre-trained checkpoint without a classification head gets a freshly initialised one
    (transformers warns about it; that is expected for fine-tuning).
    """
    from transformers import AutoModelForSequenceClassification

    source = resolve_model_source(name)
    adapter_base = _adapter_base(Path(source))
    base_source = resolve_model_source(adapter_base) if adapter_base else source
    check_architecture(name, base_source, AutoModelForSequenceClassification, trust_remote_code=trust_remote_code,
                       num_labels=num_labels)
    kwargs = _pretrained_kwargs(base_source, trust_remote_code)
    if label_names:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    try:
        tokenizer = load_tokenizer(source if not adapter_base else base_source, trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            base_source, num_labels=num_labels, dtype=dtype, ignore_mismatched_sizes=True, **kwargs)
    except UserError:
        raise
    except (OSError, ValueError) as e:
        if Path(base_source).is_dir():
            raise UserError(f"could not load model from folder {base_source!r}: {str(e).splitlines()[0]}") from None
        raise _hub_error(name, e) from None
    _check_loaded(model, name)
    model.config.pad_token_id = tokenizer.pad_token_id
    if adapter_base and (Path(source) / "sift_config.json").is_file():
        from tunescope.models.sparse_delta import (
            load_delta,  # the format lives with the models
        )

        load_delta(source).merge(model)
    elif adapter_base:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source, is_trainable=False)
    return model, tokenizer


def load_causal_lm(name: str, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """(model, tokenizer) for causal language modelling."""
    from transformers import AutoModelForCausalLM

    source = resolve_model_source(name)
    check_architecture(name, source, AutoModelForCausalLM, trust_remote_code=trust_remote_code)
    try:
        tokenizer = load_tokenizer(source, trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype,
                                                     **_pretrained_kwargs(source, trust_remote_code))
    except (OSError, ValueError) as e:
        if Path(source).is_dir():
            raise UserError(f"could not load model from folder {source!r}: {str(e).splitlines()[0]}") from None
        raise _hub_error(name, e) from None
    _check_loaded(model, name)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_encoder_or_lm(name: str, *, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) using the architecture's natural head-less-friendly class: causal LM for decoders,
    the bare encoder (AutoModel) for encoders. Used by instruments that only need hidden states."""
    from transformers import AutoModel

    source = resolve_model_source(name)
    layout = check_architecture(name, source, AutoModel)
    family = layout.family if layout is not None else family_of_type(_config(name, source, False).model_type)
    if family == "decoder":
        return load_causal_lm(name, dtype=dtype)
    tokenizer = load_tokenizer(source)
    model = AutoModel.from_pretrained(source, dtype=dtype, **_pretrained_kwargs(source, False))
    return model, tokenizer
