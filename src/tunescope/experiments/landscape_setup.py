"""Everything `tunescope landscape` needs before measuring: model, fixed evaluation batches, scope, base weights.

`SubjectOptions` declares which model and evaluation set; `load_subject` turns them into a `Subject`.

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
from typing import TYPE_CHECKING

from tunescope.config import Options, check
from tunescope.errors import UserError
from tunescope.experiments.rundir import RunDir

if TYPE_CHECKING:  # annotations only: importing this module (via LandscapeConfig) must not load torch
    import torch
    from torch import nn

    from tunescope.landscape.directions import Scope
    from tunescope.landscape.scores import Scorer

log = logging.getLogger(__name__)


@dataclass
class SubjectOptions(Options):
    """The model whose basin is measured, and its fixed evaluation set."""

    model: str = "minilm-l6"
    """Model: a named asset, a local folder, a tunescope run directory (its checkpoints/final), or a hub id."""
    base: str | None = None
    """Base checkpoint theta_0 of the `sft` direction (default for a run directory: the model it started from)."""
    data: str | None = None
    """Evaluation data (default: the run's data, rotten_tomatoes for classifiers, news_text for language models).
    A language model on SFT data (quartz, a messages / prompt + completion file) is scored on its completion
    tokens."""
    text_column: str | None = None
    """Text column of a local or hub data set."""
    label_column: str | None = None
    """Label column of a local or hub data set."""
    eval_examples: int = 256
    """Examples (classification, SFT data) or held-out blocks (plain text for a language model) in the evaluation
    set."""
    eval_batch_size: int = 64
    """Batch size of the score evaluations."""
    max_length: int = 64
    """Maximum tokens per example (block length for language models)."""
    limit: int | None = None
    """Cap on examples per split when loading the data."""

    def validate(self) -> None:
        check(self.eval_examples >= 1, "eval_examples", self.eval_examples, "a positive integer")
        check(self.eval_batch_size >= 1, "eval_batch_size", self.eval_batch_size, "a positive integer")
        check(self.max_length >= 2, "max_length", self.max_length, "an integer >= 2")


@dataclass
class Subject:
    """The model under study and what its basin is measured with."""

    model: nn.Module
    scorer: Scorer
    scope: Scope
    base_params: dict[str, torch.Tensor] | None
    chance: float | None
    data_name: str
    run: dict


def is_run_dir(path: str) -> bool:
    """True for a finished tunescope run directory (config.yaml and checkpoints/final)."""
    run = RunDir(Path(path))
    return run.config_file.is_file() and run.final.is_dir()


def run_info(path: str) -> dict:
    """The run directory's config.yaml (data, model, seed, strategy ...) or {} for anything else."""
    if not is_run_dir(path):
        return {}
    return RunDir(Path(path)).saved_config() or {}


def is_causal_lm(source: str) -> bool:
    """True when the checkpoint is a causal LM (config architectures, or a PEFT adapter's task type)."""
    folder = Path(source)
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text()).get("task_type") == "CAUSAL_LM"
    from tunescope.models.sparse_delta import CONFIG_FILE as DELTA_CONFIG_FILE
    from tunescope.models.sparse_delta import base_model_of

    if (folder / DELTA_CONFIG_FILE).is_file() and not (folder / "config.json").is_file():
        from tunescope.models.load import resolve_model_source

        return is_causal_lm(resolve_model_source(base_model_of(folder)))  # a sparse delta: ask its base model
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


def _sft_batches(config, tokenizer, seed: int, model_name: str) -> list[dict[str, torch.Tensor]]:
    """Fixed batches of the first `eval_examples` test examples of SFT data, tokenised as `tunescope sft` trains
    (the model's chat template; labels -100 outside the completion), so the scorer counts completion tokens only."""
    from tunescope.data.sft import load_sft
    from tunescope.data.sft_prepare import check_chat_template, prepare_sft, sft_collator
    from tunescope.landscape.scores import collate_batches

    data = load_sft(config.data, text_column=config.text_column, seed=seed, limit=config.limit)
    check_chat_template(data, tokenizer, model_name)
    split = prepare_sft(data, tokenizer, config.max_length).tokenized["test"]
    split = split.select(range(min(config.eval_examples, len(split)))).select_columns(["input_ids", "labels"])
    return collate_batches(split, sft_collator(tokenizer), config.eval_batch_size)


def _lm_subject(config, source: str, run: dict, seed: int):
    """A causal LM scored on held-out blocks of a plain corpus (the basic capability, news_text by default) or,
    for SFT data (quartz, a messages / prompt + completion file), on the completion tokens of its test split
    (the specific capability SFT trains)."""
    from tunescope.data import load_corpus
    from tunescope.data.lm import block_batches, pack_blocks
    from tunescope.data.sft import is_sft_source
    from tunescope.landscape.scores import Scorer
    from tunescope.models.load import load_causal_lm

    data_name = config.data or "news_text"
    model, tokenizer = load_causal_lm(source)
    if is_sft_source(data_name):
        batches = _sft_batches(config, tokenizer, seed, config.model)
    else:
        corpus = load_corpus(data_name, text_column=config.text_column, seed=seed, limit=config.limit)
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
    from tunescope.models.sparse_delta import is_delta_folder, load_delta

    folder = RunDir(Path(run_dir)).final
    if not is_delta_folder(folder):
        raise UserError(f"bad value 'sparse' for --scope: {str(run_dir)!r} is not a SIFT run "
                        "(no sift_delta.safetensors in checkpoints/final); use all, body, layers:A-B or adapters")
    return load_delta(folder).masks()


def load_subject(config) -> Subject:
    """Model, scorer (fixed evaluation batches), scope and base weights for `config` (a LandscapeConfig)."""
    from tunescope.experiments.diagnose import resolve_checkpoint
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
