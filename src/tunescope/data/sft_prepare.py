"""Tokenising SFT data exactly as trl's SFTTrainer does, before any trainer exists, and what max_length costs.

trl's SFTTrainer prepares a data set in `SFTTrainer._prepare_dataset`: chat template, EOS, tokenisation, `labels`
(-100 where no loss), truncation to max_length and dropping examples left without a loss token. That method reads
only three attributes of the trainer, so `_TrlPreparation` runs it with those three and no model, optimizer or
accelerator: every strategy, the diagnostics and the task's evaluation see the very sequences SFTTrainer trains on
(handed a data set that already holds `labels`, SFTTrainer keeps them as they are).

Which tokens carry the loss (labels != -100) with completion_only_loss on (the default):
    messages            every assistant turn (trl's assistant_only_loss) when the chat template has
                        {% generation %} markers or trl ships a training version of it; otherwise the LAST assistant
                        turn: each conversation becomes a conversational prompt / completion pair at its last
                        assistant turn (trl's completion_only_loss) and the turns before it are context
    prompt-completion   the completion (trl's completion_only_loss)
    text                every token
With it off: every token of each rendered sequence.

max_length: an example whose prompt alone fills max_length tokens keeps no completion token; it is dropped and
counted (`dropped_long_prompts`, with a warning); a split left empty is a UserError. A completion that runs past
max_length is cut there and counted (`truncated`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from datasets import Dataset

from tunescope.data.classification import SPLITS
from tunescope.data.sft import SFTData, prompt_of
from tunescope.errors import UserError

log = logging.getLogger(__name__)

ASSISTANT_TURNS, LAST_ASSISTANT_TURN, COMPLETION, ALL_TOKENS = ("assistant turns", "last assistant turn",
                                                                "completion", "all tokens")
NO_TEMPLATE_FORMATS = "prompt / completion strings or plain text"
"""The SFT formats a tokenizer without a chat template can still train on."""


@dataclass
class PreparedSFT:
    """tokenized[split]: rows of input_ids, labels (-100: no loss) and `row` (the index into data.split(split));
    facts: loss_on, max_length and per split the loss tokens, the dropped and the truncated examples;
    template: the chat template the rows were rendered with (None: the tokenizer's own)."""

    tokenized: dict[str, Dataset]
    facts: dict
    template: str | None = None


def _trl_preparation_class():
    from trl import SFTTrainer

    class _TrlPreparation(SFTTrainer):
        """SFTTrainer._prepare_dataset without a trainer: sets only the attributes that method reads."""

        def __init__(self, tokenizer, completion_only_loss: bool, chat_template: str | None) -> None:
            # Trainer.__init__ is skipped on purpose: no model, optimizer or accelerator is needed to tokenise.
            self._tokenizer = tokenizer
            self.completion_only_loss = completion_only_loss
            self.chat_template = chat_template

    return _TrlPreparation


@contextmanager
def quiet_maps() -> Iterator[None]:
    """No datasets progress bars while trl's preparation maps the splits (a dozen tiny maps per split; a bad-input
    error must stay the only line on stderr)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _preparation_args(assistant_only_loss: bool, completion_only_loss: bool):
    """trl's SFTConfig for preparing data only (no device is used: the CPU settings just pass its checks)."""
    from accelerate import PartialState
    from trl import SFTConfig as TrlSFTConfig

    PartialState()  # trl logs through accelerate, which needs its state
    return TrlSFTConfig(output_dir=None, report_to="none", use_cpu=True, bf16=False, gradient_checkpointing=None,
                        activation_checkpointing=False, max_length=None, assistant_only_loss=assistant_only_loss,
                        completion_only_loss=completion_only_loss)


def _assistant_template(tokenizer) -> tuple[bool, str | None]:
    """(can mask assistant turns, the template trl would train with: None = the tokenizer's own).

    The same choice SFTTrainer makes for assistant_only_loss: the tokenizer's template if it has {% generation %}
    markers, else trl's training version of it, if trl has one.
    """
    from trl.chat_template_utils import (
        get_training_chat_template,
        has_generation_markers,
    )

    if has_generation_markers(tokenizer.chat_template):
        return True, None
    try:
        return True, get_training_chat_template(tokenizer)
    except ValueError:  # trl has no training version of this template
        return False, None


def loss_plan(data: SFTData, tokenizer, completion_only_loss: bool) -> tuple[str, str | None]:
    """(which tokens carry the loss, the chat template to render with; None = the tokenizer's own)."""
    if not completion_only_loss or data.format == "text":
        return ALL_TOKENS, None
    if data.format == "prompt-completion":
        return COMPLETION, None
    can_mask, template = _assistant_template(tokenizer)
    return (ASSISTANT_TURNS, template) if can_mask else (LAST_ASSISTANT_TURN, None)


def check_chat_template(data: SFTData, tokenizer, model_name: str) -> None:
    """UserError when conversational data meets a tokenizer without a chat template."""
    if data.conversational and not tokenizer.chat_template:
        raise UserError(f"model {model_name!r} has no chat template, so it cannot render the conversational data "
                        f"{data.name!r}; pass --chat-template FILE.jinja, or give {NO_TEMPLATE_FORMATS} (those work "
                        "without one)")


def _at_last_reply(split: Dataset) -> Dataset:
    """Conversations as conversational prompt / completion pairs split at the last assistant turn."""
    def pair(example: dict) -> dict:
        prompt = prompt_of(example)
        return {"prompt": prompt, "completion": [example["messages"][len(prompt)]]}

    return split.map(pair, remove_columns=["messages"], desc="splitting conversations at the last reply")


def _first_loss_index(labels: list[int]) -> int | None:
    return next((i for i, label in enumerate(labels) if label != -100), None)


def _count_cuts(prepared: Dataset, max_length: int, split: str, source: str) -> dict:
    """Dropped / truncated counts of one split tokenised without a length limit; UserError when none is kept."""
    firsts = [_first_loss_index(labels) for labels in prepared["labels"]]
    lengths = [len(ids) for ids in prepared["input_ids"]]
    long_prompts = [f for f in firsts if f is not None and f >= max_length]
    no_loss = sum(f is None for f in firsts)
    kept = len(firsts) - len(long_prompts) - no_loss
    if kept == 0:
        why = (f"its prompt is at least {min(long_prompts)} tokens, so max_length={max_length} leaves no completion "
               f"token; raise --max-length above {min(long_prompts)}") if long_prompts else \
            "the chat template renders none of its completion tokens"
        raise UserError(f"every one of the {len(firsts)} {split} examples of {source!r} was dropped: {why}")
    if long_prompts:
        log.warning("dropped %d of %d %s examples whose prompt fills max_length=%d tokens (no completion token "
                    "left; the longest prompt has %d tokens); raise --max-length to keep them",
                    len(long_prompts), len(firsts), split, max_length, max(long_prompts))
    if no_loss:
        log.warning("dropped %d %s examples whose rendered sequence holds no completion token", no_loss, split)
    truncated = sum(1 for f, n in zip(firsts, lengths) if f is not None and f < max_length < n)
    return {"dropped_long_prompts": len(long_prompts), "dropped_no_loss_tokens": no_loss, "truncated": truncated}


def prepare_sft(data: SFTData, tokenizer, max_length: int, completion_only_loss: bool = True) -> PreparedSFT:
    """Every split tokenised by trl's preparation, with labels per `loss_plan`, cut to `max_length`."""
    loss_on, template = loss_plan(data, tokenizer, completion_only_loss)
    assistant_only = loss_on == ASSISTANT_TURNS
    if assistant_only:
        from trl.chat_template_utils import is_chat_template_stop_token_trained

        if not is_chat_template_stop_token_trained(tokenizer, chat_template=template):
            log.warning("the chat template leaves the end-of-turn token outside the assistant mask: the model may "
                        "not learn to stop")
    args = _preparation_args(assistant_only, loss_on in (COMPLETION, LAST_ASSISTANT_TURN))
    preparation = _trl_preparation_class()(tokenizer, args.completion_only_loss, template)
    tokenized, facts = {}, {"loss_on": loss_on, "max_length": max_length, "loss_tokens": {},
                            "dropped_long_prompts": {}, "dropped_no_loss_tokens": {}, "truncated": {}}
    with quiet_maps():
        for split in SPLITS:
            tokenized[split], cuts = _prepare_split(preparation, data, split, tokenizer, args, loss_on, max_length)
            for key, value in cuts.items():
                facts[key][split] = value
            facts["loss_tokens"][split] = sum(sum(label != -100 for label in labels)
                                              for labels in tokenized[split]["labels"])
    return PreparedSFT(tokenized=tokenized, facts=facts, template=template)


def _prepare_split(preparation, data: SFTData, split: str, tokenizer, args, loss_on: str,
                   max_length: int) -> tuple[Dataset, dict]:
    """One split through trl's preparation: whole sequences first (to count what max_length cuts), then cut.
    Returns (input_ids / labels / row rows, {dropped_long_prompts, dropped_no_loss_tokens, truncated})."""
    raw = data.split(split)
    raw = raw.add_column("row", list(range(len(raw))))
    if loss_on == LAST_ASSISTANT_TURN:
        raw = _at_last_reply(raw)
    args.max_length = None
    try:
        whole = preparation._prepare_dataset(raw, tokenizer, args, False, None, split)
    except RuntimeError as e:  # trl: an assistant mask without a single assistant token
        raise UserError(f"the chat template of this model marks no assistant token in some {split} examples of "
                        f"{data.name!r} ({str(e).splitlines()[0][:120]}); pass --chat-template FILE.jinja whose "
                        "assistant turns sit inside {% generation %} ... {% endgeneration %}") from None
    cuts = _count_cuts(whole, max_length, split, data.name)
    args.max_length = max_length  # on rows that hold labels already trl only truncates and drops
    cut = preparation._prepare_dataset(whole, tokenizer, args, False, None, split)
    return cut.select_columns(["input_ids", "labels", "row"]), cuts


def tokenize_pairs(pairs: Dataset, tokenizer, template: str | None = None) -> Dataset:
    """Prompt / completion rows (strings, or turns) tokenised by trl with the loss on the completion only and no
    length limit: input_ids and labels, plus the rows' other columns."""
    args = _preparation_args(False, True)
    with quiet_maps():
        return _trl_preparation_class()(tokenizer, True, template)._prepare_dataset(pairs, tokenizer, args, False,
                                                                                     None, "answers")


def sft_collator(tokenizer):
    """trl's collator: pads input_ids with the pad token and labels with -100, per batch."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)


def sft_probe_batches(dataset: Dataset, collator, *, batch_size: int, num_batches: int,
                      seed: int) -> list[dict[str, torch.Tensor]]:
    """`num_batches` batches of tokenised SFT rows drawn with `seed` (labels -100 outside the loss), for the
    per-layer diagnostics on the SFT loss: data.tokenize.probe_batches (the same seeded draw as every probe) with
    the SFT collator."""
    from tunescope.data.tokenize import probe_batches

    return probe_batches(dataset, None, batch_size=batch_size, num_batches=num_batches, seed=seed, collate=collator)
