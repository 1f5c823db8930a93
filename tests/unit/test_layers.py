"""models.layers finds blocks, attention, embeddings and head for every tiny architecture (and under peft)."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification, T5Config, T5ForSequenceClassification

from tunescope.errors import UserError
from tunescope.models.layers import block_index_of, model_layout
from tunescope.models.tiny import TINY_ARCHITECTURES, tiny_classifier


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_layout_of_tiny_models(arch, tokenizer):
    model = tiny_classifier(arch, tokenizer)
    layout = model_layout(model)
    assert layout.num_layers == 4 and len(layout.attentions) == 4
    assert all("Attention" in type(a).__name__ for a in layout.attentions)
    assert layout.head is not None and layout.head.out_features == 2
    # h_0 is the input of block 0 and the blocks chain: check with hidden states
    seen = []
    hook = layout.blocks[0].register_forward_pre_hook(
        lambda m, a, kw: seen.append(a[0] if a else kw["hidden_states"]), with_kwargs=True)
    ids = tokenizer(["good movie", "bad plot"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, output_hidden_states=True)
    hook.remove()
    assert torch.allclose(seen[0], out.hidden_states[0])
    names = [n for n, _ in model.named_parameters()]
    assert block_index_of(next(n for n in names if n.startswith(layout.block_prefixes[2])), layout) == 2


def test_layout_under_peft(tokenizer):
    model = get_peft_model(tiny_classifier("bert", tokenizer),
                           LoraConfig(r=2, target_modules=["query"], task_type="SEQ_CLS"))
    layout = model_layout(model)
    assert layout.block_prefixes[0].startswith("base_model.model.bert.encoder.layer.0")


def test_unsupported_architecture_names_supported():
    cfg = T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0)
    with pytest.raises(UserError, match="unsupported architecture 't5'.*bert.*gpt2.*llama"):
        model_layout(T5ForSequenceClassification(cfg))
    model_layout(BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                          num_attention_heads=2, intermediate_size=32)))


def _tiny_auto(config):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_config(config)


@pytest.mark.parametrize("name", ["roberta", "distilbert", "qwen2"])
def test_layout_of_other_supported_architectures(name):
    from transformers import DistilBertConfig, Qwen2Config, RobertaConfig

    config = {
        "roberta": RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=40),
        "distilbert": DistilBertConfig(vocab_size=60, dim=16, n_layers=3, n_heads=2, hidden_dim=32),
        "qwen2": Qwen2Config(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                             num_key_value_heads=1, intermediate_size=32, pad_token_id=0),
    }[name]
    layout = model_layout(_tiny_auto(config))
    assert layout.num_layers == 3 and all(a is not None for a in layout.attentions)
    assert layout.head is not None
