"""Everything `tunescope landscape` needs before measuring: model, fixed evaluation batches, scope, base weights.

A tunescope run directory stands for its final checkpoint, and lends its data, seed (so the evaluation
split is the run's own test split) and pre-trained model (the default `--base` of the sft direction).
A LoRA checkpoint is merged into its base for every scope except `adapters`, so "all" means the
weights the model actually computes with, and sft directions compare like with like.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tunescope.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """The model under study and what its basin is measured with."""

    model: nn.Module
    scorer: object  # landscape.scores.Scorer
    scope: object  # landscape.directions.Scope
    base_params: dict[str, torch.Tensor] | None
    chance: float | None
    data_name: str
    run: dict


def is_causal_lm(source: str) -> bool:
    """True when the checkpoint is a causal LM (config architectures, or a PEFT adapter's task type)."""
    folder = Path(source)
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text()).get("task_type") == "CAUSAL_LM"
    sift = folder / "sift_config.json"  # a SIFT delta: ask its base model
    if sift.is_file() and not (folder / "config.json").is_file():
        from tunescope.models.load import resolve_model_source

        return is_causal_lm(resolve_model_source(json.loads(sift.read_text())["base_model_name_or_path"]))
    from transformers import AutoConfig

    try:
        archs = AutoConfig.from_pretrained(source).architectures or []
    except (OSError, ValueError) as e:
        raise UserError(f"could not read the model config of {source!r}: {str(e).splitlines()[0]}") from None
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def _merge_unless_adapters(model: nn.Module, scope: str) -> nn.Module:
    from peft import PeftModel

    if isinstance(model, PeftModel) and scope != "adapters":
        return model.merge_and_unload()
    return model


def _classification_subject(config, source: str, run: dict, seed: int):
    from transformers import set_seed

    from tunescope.data import load_classification
    from tunescope.data.tokenize import collator, tokenize_classification
    from tunescope.landscape.scores import Scorer, collate_batches
    from tunescope.models.load import load_classifier

    data_name = config.data or run.get("data") or "rotten_tomatoes"
    text_column = config.text_column or run.get("text_column")
    label_column = config.label_column or run.get("label_column")
    data = load_classification(data_name, text_column=text_column, label_column=label_column, seed=seed,
                               limit=config.limit)
    model, tokenizer = load_classifier(source, data.num_labels, label_names=data.label_names)
    base_params = None
    base = config.base or (run.get("model") if run else None)
    if "sft" in config.directions and base:
        from tunescope.experiments.diagnose import resolve_checkpoint

        # The run seeded before loading its model, so the same seed re-creates its initial (random) head:
        # the head's sft difference is then its real change, not a difference of two random inits.
        set_seed(seed)
        base_model, _ = load_classifier(resolve_checkpoint(base), data.num_labels, label_names=data.label_names)
        base_model = _merge_unless_adapters(base_model, "all")
        base_params = {n: p.detach() for n, p in base_model.named_parameters()}
    tokenized = tokenize_classification(data, tokenizer, config.max_length)
    split = tokenized["test"]
    split = split.select(range(min(config.eval_examples, len(split))))
    batches = collate_batches(split, collator(tokenizer), config.eval_batch_size)
    return model, Scorer("classification", batches), base_params, 1.0 / data.num_labels, data_name


def _lm_subject(config, source: str, run: dict, seed: int):
    from tunescope.data import load_corpus
    from tunescope.data.lm import block_batches, pack_blocks
    from tunescope.landscape.scores import Scorer
    from tunescope.models.load import load_causal_lm

    data_name = config.data or "news_text"
    corpus = load_corpus(data_name, text_column=config.text_column, seed=seed, limit=config.limit)
    model, tokenizer = load_causal_lm(source)
    blocks = pack_blocks(corpus.heldout, tokenizer, config.max_length, max_blocks=config.eval_examples)
    batches = list(block_batches(blocks, config.eval_batch_size))
    base_params = None
    if "sft" in config.directions and config.base:
        base_model, _ = load_causal_lm(config.base)
        base_params = {n: p.detach() for n, p in base_model.named_parameters()}
    return model, Scorer("causal-lm", batches), base_params, None, data_name


def sparse_masks(run_dir: str) -> dict[str, torch.Tensor]:
    """Bool masks (parameter shape) of the entries a SIFT run trained, from its saved delta's indices.

    Only the sparse targets: the densely trained head is not part of the `sparse` scope.
    """
    from tunescope.strategies.sift.state import is_sift_folder, load_delta

    folder = Path(run_dir) / "checkpoints" / "final"
    if not is_sift_folder(folder):
        raise UserError(f"bad value 'sparse' for --scope: {str(run_dir)!r} is not a SIFT run "
                        "(no sift_delta.safetensors in checkpoints/final); use all, body, layers:A-B or adapters")
    delta = load_delta(folder)
    masks = {}
    for name, (indices, _) in delta.sparse.items():
        shape = delta.config["targets"][name]["shape"]
        mask = torch.zeros(int(torch.tensor(shape).prod()), dtype=torch.bool)
        mask[indices] = True
        masks[name] = mask.view(shape)
    return masks


def load_subject(config) -> Subject:
    """Model, scorer (fixed evaluation batches), scope and base weights for `config` (a LandscapeConfig)."""
    from tunescope.experiments.diagnose import resolve_checkpoint
    from tunescope.experiments.landscape import run_info
    from tunescope.landscape.directions import select_scope
    from tunescope.models.load import resolve_model_source

    run = run_info(config.model)
    source = resolve_model_source(resolve_checkpoint(config.model))
    seed = int(run.get("seed", config.seed)) if run else config.seed
    if is_causal_lm(source):
        model, scorer, base_params, chance, data_name = _lm_subject(config, source, run, seed)
    else:
        model, scorer, base_params, chance, data_name = _classification_subject(config, source, run, seed)
    masks = None
    scope_name = config.scope
    if config.scope == "sparse":
        if not run:
            raise UserError("bad value 'sparse' for --scope: expected --model to be a tunescope run directory "
                            "of a sparse (sift) run")
        masks, scope_name = sparse_masks(config.model), "all"
    model = _merge_unless_adapters(model, config.scope).eval()
    scope = select_scope(model, scope_name, masks=masks)
    return Subject(model, scorer, scope, base_params, chance, data_name, run)
