"""Causal-LM supervised fine-tuning (SFT): a decoder continues prompts; the loss is on completion tokens only.

`load` is the one seeded path from a config to a model and its tokenised splits (data/sft.py reads and splits the
data, data/sft_prepare.py tokenises it with trl's own preparation and says which tokens carry the loss), so the
`sft` recipe, its strategies, the diagnostics and a reloaded checkpoint all see the same sequences.

`evaluate` scores one split on its loss tokens (training/lm_evaluate.py):
    loss = mean token NLL over the loss tokens, perplexity = exp(loss), mean_token_accuracy = share of loss tokens
    whose argmax prediction equals the label;
and, when the data has a `choices` column, task accuracy by log-likelihood and by greedy generation
(tasks/choice_accuracy.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tunescope.errors import UserError
from tunescope.tasks.base import TASKS, Evaluation, LoadedTask

DEFAULT_MAX_NEW_TOKENS = 8


@dataclass
class SFTLoaded(LoadedTask):
    """LoadedTask plus what SFT evaluation needs: preparation facts (loss_on, dropped / truncated counts), the chat
    template the rows were rendered with (None: the tokenizer's own) and the generation budget of an answer."""

    preparation: dict = field(default_factory=dict)
    template: str | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


def load_lm_checkpoint(name: str, *, trust_remote_code: bool = False):
    """(model, tokenizer) of a causal LM: a named asset, a hub id or a folder, including what `tunescope sft` saves
    in checkpoints/final: a full model, a PEFT adapter folder or a SIFT sparse delta (onto its base model).
    The tokenizer comes from the folder when it holds one (it carries the chat template trained with)."""
    from tunescope.models.load import load_causal_lm, load_tokenizer, resolve_model_source
    from tunescope.models.sparse_delta import base_model_of, is_delta_folder, load_delta

    folder = Path(resolve_model_source(name))
    adapter = folder / "adapter_config.json"
    if is_delta_folder(folder):
        base = base_model_of(folder)
    elif adapter.is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
    else:
        return load_causal_lm(name, trust_remote_code=trust_remote_code)
    if not base:
        raise UserError(f"checkpoint {name!r} does not name its base model (base_model_name_or_path)")
    model, tokenizer = load_causal_lm(base, trust_remote_code=trust_remote_code)
    if is_delta_folder(folder):
        load_delta(folder).merge(model)
    else:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(str(folder), trust_remote_code)
    return model, tokenizer


def _refuse_encoder(model: nn.Module, name: str) -> None:
    from tunescope.models.layers import model_layout

    layout = model_layout(model)
    if layout.family != "decoder":
        raise UserError(f"model {name!r} is an encoder ({layout.model_type}); SFT continues text, so it needs a "
                        "decoder (causal LM) such as smollm2-135m")


class CausalLM:
    name = "causal-lm"
    peft_task_type = "CAUSAL_LM"
    has_head = False

    def load(self, config: Any, model_source: str | None = None) -> SFTLoaded:
        """set_seed(config.seed); read and split `config.data` (checked row by row); load the causal LM
        `model_source` (default `config.model`); put `config.chat_template` (a Jinja file) on its tokenizer if
        given; tokenise every split with trl's preparation to `config.max_length` tokens.

        `config` holds tasks.options.TaskOptions; `completion_only_loss`, `chat_template` and
        `answer_max_new_tokens` are read when present (defaults: True, None, 8).
        """
        from transformers import set_seed

        from tunescope.data.sft import load_sft
        from tunescope.data.sft_prepare import check_chat_template, prepare_sft, sft_collator

        set_seed(config.seed)
        if getattr(config, "label_column", None) is not None:
            raise UserError(f"bad value {config.label_column!r} for label_column: SFT data has no labels (its "
                            "formats: messages, prompt + completion, or text)")
        data = load_sft(config.data, text_column=config.text_column, seed=config.seed, limit=config.limit)
        name = model_source or config.model
        model, tokenizer = load_lm_checkpoint(name, trust_remote_code=config.trust_remote_code)
        _refuse_encoder(model, name)
        template_file = getattr(config, "chat_template", None)
        if template_file:
            tokenizer.chat_template = Path(template_file).expanduser().read_text(encoding="utf-8")
        check_chat_template(data, tokenizer, name)
        prepared = prepare_sft(data, tokenizer, config.max_length, getattr(config, "completion_only_loss", True))
        return SFTLoaded(data=data, model=model, tokenizer=tokenizer, tokenized=prepared.tokenized,
                         collator=sft_collator(tokenizer), preparation=prepared.facts, template=prepared.template,
                         max_new_tokens=getattr(config, "answer_max_new_tokens", DEFAULT_MAX_NEW_TOKENS))

    def evaluate(self, model: nn.Module, loaded: SFTLoaded, split: str, batch_size: int) -> Evaluation:
        """Token metrics of `split` (loss, perplexity, mean_token_accuracy) and, with choices, task accuracy."""
        from tunescope.tasks.choice_accuracy import choice_accuracy

        evaluation = token_evaluation(model, loaded, split, batch_size)
        if loaded.data.has_choices:
            metrics, arrays = choice_accuracy(model, loaded.tokenizer, loaded.data.split(split),
                                              loaded.tokenized[split]["row"], collator=loaded.collator,
                                              batch_size=batch_size, max_new_tokens=loaded.max_new_tokens,
                                              template=loaded.template)
            evaluation.metrics.update(metrics)
            evaluation.arrays.update(arrays)
        return evaluation


def token_evaluation(model: nn.Module, loaded: LoadedTask, split: str, batch_size: int) -> Evaluation:
    """The token metrics of one split only (no generation): loss, perplexity, mean_token_accuracy, counts."""
    from tunescope.training.lm_evaluate import token_metrics, token_statistics

    dataset = loaded.tokenized[split].select_columns(["input_ids", "labels"])
    stats = token_statistics(model, dataset, loaded.collator, batch_size)
    return Evaluation(token_metrics(stats), stats)


TASKS.register("causal-lm", CausalLM())
