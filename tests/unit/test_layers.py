"""models.layers discovers blocks, attention, embeddings and head for every tiny architecture (and under peft),
derives the default LoRA / SIFT targets from the attention, and refuses what it cannot measure."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    T5Config,
    T5ForSequenceClassification,
)

from tunescope.errors import UserError
from tunescope.models.layers import (
    block_index_of,
    default_lora_targets,
    default_sift_targets,
    model_layout,
)
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


def test_unsupported_architecture_names_the_reason():
    cfg = T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0)
    with pytest.raises(UserError, match="unsupported architecture 't5': T5ForSequenceClassification does not route "
                                        "attention through transformers' attention interface"):
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


def test_block_list_found_without_no_split_modules(tokenizer):
    model = tiny_classifier("distilbert", tokenizer)
    assert not model._no_split_modules  # the fallback: the longest same-class ModuleList holding attention
    layout = model_layout(model)
    assert layout.blocks_path == "distilbert.transformer.layer" and layout.num_layers == 4
    assert layout.embeddings is model.distilbert.embeddings and layout.final_norm is None


def test_embeddings_final_norm_and_family_are_discovered(tokenizer):
    bert, gpt2 = tiny_classifier("bert", tokenizer), tiny_classifier("gpt2", tokenizer)
    assert model_layout(bert).embeddings is bert.bert.embeddings and model_layout(bert).final_norm is None
    assert model_layout(bert).family == "encoder" and model_layout(gpt2).family == "decoder"
    layout = model_layout(gpt2)
    assert layout.embeddings is gpt2.transformer.wte and layout.final_norm is gpt2.transformer.ln_f
    assert layout.head is gpt2.score and layout.head_name == "score"


def test_default_targets_match_only_attention_projections(tokenizer):
    model = tiny_classifier("gpt2", tokenizer)
    # GPT-2's MLP has a c_proj too: the LoRA name must not select it
    assert default_lora_targets(model) == ["c_attn", "attn.c_proj"]
    assert default_sift_targets(model) == ["attn.c_attn", "attn.c_proj"]
    assert default_lora_targets(tiny_classifier("bert", tokenizer)) == ["query", "key", "value"]


def test_default_targets_are_the_same_under_peft(tokenizer):
    plain = tiny_classifier("llama", tokenizer)
    lora, sift = default_lora_targets(plain), default_sift_targets(plain)
    wrapped = get_peft_model(tiny_classifier("llama", tokenizer),
                             LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS"))
    assert default_lora_targets(wrapped) == lora and default_sift_targets(wrapped) == sift


def test_supported_folder_passes_the_weightless_check(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    from tunescope.models.load import check_architecture

    layout = check_architecture("tiny", str(tiny_model_dir["llama"]), AutoModelForSequenceClassification,
                                num_labels=2)
    assert layout.model_type == "llama" and layout.num_layers == 4
    assert all(p.is_meta for p in layout.blocks[0].parameters())  # nothing was loaded
