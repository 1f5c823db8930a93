"""Tiny random models and a WordPiece tokenizer built in-process (tests, demos, benchmarks).

Building one takes ~10 ms; nothing is downloaded. TINY_ARCHITECTURES (bert, gpt2, llama) run through every
contract test; EXTRA_TINY_ARCHITECTURES (roberta, distilbert, qwen2, mistral) are covered by the diagnostics
tests; DISCOVERY_ARCHITECTURES is every model type the architecture-discovery contract test builds (any
transformers model type works: its config class is shrunk generically, see `tiny_config`).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Iterable

import torch
from transformers import (
    CONFIG_MAPPING,
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
# Model types of tests/contract/test_architectures.py (encoders, then decoders); deberta-v2 and falcon are
# there to be refused (their attention does not go through transformers' attention interface).
DISCOVERY_ARCHITECTURES = (
    "bert", "roberta", "distilbert", "deberta-v2", "electra", "modernbert",
    "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2",
    "falcon", "opt",
)
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
    """Config of a tiny model of architecture `arch`: any transformers model type (config.model_type).

    The types of TINY_ARCHITECTURES and EXTRA_TINY_ARCHITECTURES keep their hand-written configs (the
    existing tests' numbers depend on them); every other type is shrunk from its config class's own
    parameters (`_generic_tiny_config`).
    """
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
    if arch in CONFIG_MAPPING:
        return _generic_tiny_config(arch, dict(num_hidden_layers=num_layers, hidden_size=hidden,
                                               num_attention_heads=heads, **common))
    raise ValueError(f"tiny architecture must be a transformers model type such as "
                     f"{', '.join(TINY_ARCHITECTURES + EXTRA_TINY_ARCHITECTURES)}; got {arch!r}")


# Sizes that default to production values under names that differ between config classes; each is set
# wherever the config class has a parameter of that name (hidden = the requested hidden size).
_WIDTH_NAMES = ("intermediate_size", "hidden_dim", "ffn_dim", "n_inner", "ffn_hidden_size")  # MLP: 2 x hidden
_HIDDEN_NAMES = ("embedding_size", "word_embed_proj_dim")  # factorised / projected embeddings: = hidden
_LOCAL_WINDOW = 6  # sliding-window / local attention span: below the test sequence lengths, so it matters


def _generic_tiny_config(arch: str, wanted: dict) -> PretrainedConfig:
    """A tiny config of any transformers model type, from the parameters its config class declares.

    `wanted` uses the standard names (hidden_size, num_hidden_layers, ...); a class's `attribute_map`
    translates them to its own (GPT-2's n_embd, DistilBERT's dim); names a class does not declare are dropped.
    """
    cls = CONFIG_MAPPING[arch]
    params = set(inspect.signature(cls.__init__).parameters)
    rename = getattr(cls, "attribute_map", {}) or {}
    hidden, heads = wanted["hidden_size"], wanted["num_attention_heads"]
    kwargs = {rename.get(k, k): v for k, v in wanted.items()}
    kwargs.update({n: 2 * hidden for n in _WIDTH_NAMES})
    kwargs.update({n: hidden for n in _HIDDEN_NAMES})
    kwargs.update(head_dim=hidden // heads, num_key_value_heads=max(heads // 2, 1), num_kv_heads=max(heads // 2, 1),
                  max_position_embeddings=130, sliding_window=_LOCAL_WINDOW, local_attention=_LOCAL_WINDOW,
                  cls_token_id=wanted["bos_token_id"], sep_token_id=wanted["eos_token_id"])
    num_labels = kwargs.pop("num_labels")
    config = cls(**{k: v for k, v in kwargs.items() if k in params})
    config.num_labels = num_labels
    return config


def _ids(tokenizer: PreTrainedTokenizerFast) -> dict:
    return dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)


def tiny_classifier(arch: str, tokenizer: PreTrainedTokenizerFast, *, num_labels: int = 2, seed: int = 0,
                    **kwargs) -> torch.nn.Module:
    """A tiny randomly initialised sequence classifier (SDPA attention where supported, fp32, train mode off)."""
    torch.manual_seed(seed)
    ids = _ids(tokenizer)
    config = tiny_config(arch, ids.pop("vocab_size"), num_labels=num_labels, **ids, **kwargs)
    return _from_config(AutoModelForSequenceClassification, config)


def tiny_causal_lm(arch: str, tokenizer: PreTrainedTokenizerFast, *, seed: int = 0, **kwargs) -> torch.nn.Module:
    """A tiny randomly initialised causal LM (any model type with a causal-LM class: gpt2, llama, ...)."""
    torch.manual_seed(seed)
    ids = _ids(tokenizer)
    config = tiny_config(arch, ids.pop("vocab_size"), **ids, **kwargs)
    return _from_config(AutoModelForCausalLM, config)


def _from_config(auto_class, config: PretrainedConfig) -> torch.nn.Module:
    """`auto_class` built from `config` with SDPA attention, or eager where the class declares no SDPA
    support (Gemma 2: SDPA has no logit soft-capping); fp32, eval mode."""
    model_class = auto_class._model_mapping[type(config)]
    attn = "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"
    return auto_class.from_config(config, attn_implementation=attn).eval()


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
