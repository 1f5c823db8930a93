"""Tiny random models and a WordPiece tokenizer built in-process (tests, demos, benchmarks).

Building one takes ~10 ms; nothing is downloaded. TINY_ARCHITECTURES (bert, gpt2, llama) run through every
contract test; EXTRA_TINY_ARCHITECTURES (roberta, distilbert, qwen2, mistral) cover the rest of the supported
architectures in the diagnostics tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    RobertaConfig,
)

TINY_ARCHITECTURES = ("bert", "gpt2", "llama")
EXTRA_TINY_ARCHITECTURES = ("roberta", "distilbert", "qwen2", "mistral")
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_tokenizer(texts: Iterable[str], vocab_size: int = 500) -> PreTrainedTokenizerFast:
    """A lower-cased word-level WordPiece tokenizer whose vocabulary is the most frequent words of `texts`.

    Has pad/unk/cls/sep/mask, adds [CLS] ... [SEP] around each text, pads on the right.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    counts = Counter(w for t in texts for w in re.findall(r"\w+|[^\w\s]", t.lower()))
    words = [w for w, _ in counts.most_common(max(vocab_size - len(SPECIAL_TOKENS), 1))]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", bos_token="[CLS]", eos_token="[SEP]",
        model_max_length=512,
    )


def tiny_config(arch: str, vocab_size: int, *, num_layers: int = 4, hidden: int = 32, heads: int = 4,
                num_labels: int = 2, pad_token_id: int = 0, bos_token_id: int = 2,
                eos_token_id: int = 3) -> PretrainedConfig:
    """Config of a tiny model of architecture `arch` (TINY_ARCHITECTURES or EXTRA_TINY_ARCHITECTURES)."""
    common = dict(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id,
                  bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    if arch == "bert":
        return BertConfig(hidden_size=hidden, num_hidden_layers=num_layers, num_attention_heads=heads,
                          intermediate_size=2 * hidden, max_position_embeddings=128, **common)
    if arch == "gpt2":
        return GPT2Config(n_embd=hidden, n_layer=num_layers, n_head=heads, n_positions=128, **common)
    if arch == "roberta":  # positions start after pad_token_id, hence the extra room
        return RobertaConfig(hidden_size=hidden, num_hidden_layers=num_layers, num_attention_heads=heads,
                             intermediate_size=2 * hidden, max_position_embeddings=130, **common)
    if arch == "distilbert":
        return DistilBertConfig(dim=hidden, n_layers=num_layers, n_heads=heads, hidden_dim=2 * hidden,
                                max_position_embeddings=128, **common)
    decoders = {"llama": LlamaConfig, "qwen2": Qwen2Config, "mistral": MistralConfig}
    if arch in decoders:
        return decoders[arch](hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=num_layers,
                              num_attention_heads=heads, num_key_value_heads=max(heads // 2, 1),
                              max_position_embeddings=128, **common)
    raise ValueError(f"tiny architecture must be one of {TINY_ARCHITECTURES + EXTRA_TINY_ARCHITECTURES}, "
                     f"got {arch!r}")


def _ids(tokenizer: PreTrainedTokenizerFast) -> dict:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


def tiny_classifier(arch: str, tokenizer: PreTrainedTokenizerFast, *, num_labels: int = 2, seed: int = 0,
                    **kwargs) -> torch.nn.Module:
    """A tiny randomly initialised sequence classifier (SDPA attention, fp32, train mode off)."""
    torch.manual_seed(seed)
    ids = _ids(tokenizer)
    config = tiny_config(arch, ids.pop("vocab_size"), num_labels=num_labels, **ids, **kwargs)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    return model.eval()


def tiny_causal_lm(arch: str, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A tiny randomly initialised causal LM (gpt2 or llama)."""
    torch.manual_seed(seed)
    ids = _ids(tokenizer)
    config = tiny_config(arch, ids.pop("vocab_size"), **ids, **kwargs)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()


# A learnable toy task for tests: the label is whether a "positive" word appears.
_POS = ["good", "great", "fine", "lovely", "superb"]
_NEG = ["bad", "awful", "poor", "dull", "boring"]
_FILL = ["the", "movie", "film", "was", "plot", "actors", "story", "and", "a", "very", "really", "this"]


def toy_sentiment(n: int = 64, seed: int = 0) -> tuple[list[str], list[int]]:
    """`n` short texts with a binary label decided by one sentiment word; learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = [_FILL[int(j)] for j in torch.randint(len(_FILL), (int(torch.randint(3, 9, (1,), generator=g)),),
                                                      generator=g)]
        pool = _POS if label else _NEG
        words.insert(int(torch.randint(len(words) + 1, (1,), generator=g)),
                     pool[int(torch.randint(len(pool), (1,), generator=g))])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels
