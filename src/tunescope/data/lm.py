"""Language-model data: a tokenizer trained on the corpus (HF `tokenizers`), and packing into fixed-length blocks.

Packing: every document is tokenised, followed by the end-of-text token, all of them concatenated in
order and cut into blocks of `block_size` tokens (the incomplete tail is dropped). Every token of a
block is a real token, so the attention mask is all ones and the labels are the input ids (the model
shifts them by one internally).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from tunescope.errors import UserError

EOT, PAD = "<|endoftext|>", "<|pad|>"


def train_bpe_tokenizer(texts: Sequence[str], vocab_size: int = 4096, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts` (no unknown tokens; specials: <|endoftext|>, <|pad|>).

    bos = eos = <|endoftext|> (GPT-2 convention), pad = <|pad|>.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 300:
        raise UserError(f"bad value {vocab_size!r} for vocab_size: expected at least 300 (256 bytes + merges)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOT, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=PAD,
                                   unk_token=None, model_max_length=1_000_000)


def load_or_train_tokenizer(name: str | None, texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """`name` None -> train a BPE tokenizer on `texts`; otherwise a tokenizer folder or hub id (AutoTokenizer)."""
    if name is None or name == "" or name == "train":
        return train_bpe_tokenizer(texts, vocab_size)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(Path(name).expanduser()) if Path(name).expanduser().exists() else name)
    except (OSError, ValueError) as e:
        raise UserError(f"bad value {name!r} for tokenizer: expected 'train', a tokenizer folder or a hub id "
                        f"({str(e).splitlines()[0]})") from None
    if tok.eos_token_id is None:
        raise UserError(f"bad value {name!r} for tokenizer: it has no end-of-text (eos) token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def pack_blocks(texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, block_size: int,
                max_blocks: int | None = None) -> Tensor:
    """Tokenise `texts`, join them with eos, cut into blocks: LongTensor [num_blocks, block_size].

    Stops tokenising once `max_blocks` blocks are filled (so a small run does not tokenise a whole corpus).
    """
    if block_size < 2:
        raise UserError(f"bad value {block_size!r} for max_length: expected at least 2 tokens per block")
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    need = None if max_blocks is None else max_blocks * block_size
    chunk = 64
    for start in range(0, len(texts), chunk):
        for ids in tokenizer(list(texts[start:start + chunk]), add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(eos)
        if need is not None and len(stream) >= need:
            break
    n = len(stream) // block_size
    if max_blocks is not None:
        n = min(n, max_blocks)
    if n == 0:
        raise UserError(f"the corpus gives {len(stream)} tokens, fewer than one block of {block_size}: "
                        f"use more documents or a smaller --max-length")
    return torch.tensor(stream[: n * block_size], dtype=torch.long).view(n, block_size)


def block_batches(blocks: Tensor, batch_size: int, *, seed: int | None = None) -> Iterator[dict[str, Tensor]]:
    """One pass over `blocks` [N, T] in batches of dicts (input_ids, attention_mask, labels); shuffled when
    `seed` is given. The attention mask is all ones (packed blocks have no padding)."""
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed)) if seed is not None \
        else torch.arange(len(blocks))
    for i in range(0, len(blocks), batch_size):
        ids = blocks[order[i:i + batch_size]]
        yield {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
