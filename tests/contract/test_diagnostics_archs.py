"""Every diagnostic on every tiny architecture: a complete finite table, no hook or config change left behind."""


import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunescope.diagnostics.layerwise import (
    collect_hidden_states,
    delta_cka_profile,
    layer_diagnostics,
)
from tunescope.diagnostics.metrics import table_columns, within_bounds
from tunescope.diagnostics.selection import select_inflection_layers
from tunescope.models.layers import default_lora_targets, model_layout
from tunescope.models.tiny import (
    tiny_causal_lm,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)

CASES = [("bert", "cls"), ("gpt2", "cls"), ("llama", "cls"), ("gpt2", "lm"), ("llama", "lm"),
         ("roberta", "cls"), ("distilbert", "cls"), ("qwen2", "cls"), ("mistral", "lm")]


def _no_hooks_left(model):
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("arch,kind", CASES)
@pytest.mark.parametrize("wrapped", [False, True])
def test_full_table_on_every_architecture(arch, kind, wrapped):
    texts, labels = toy_sentiment(8, seed=3)
    tok = tiny_tokenizer(texts)
    enc = tok(texts, padding=True, return_tensors="pt")
    if kind == "cls":
        model = tiny_classifier(arch, tok)
        enc["labels"] = torch.tensor(labels)
    else:
        model = tiny_causal_lm(arch, tok)
        enc["labels"] = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    if wrapped:
        model = get_peft_model(model, LoraConfig(r=2, target_modules=default_lora_targets(model),
                                                 layers_to_transform=[1]))
    before = model_layout(model)
    rows, capture = layer_diagnostics(model, [dict(enc)], keep_hidden=True)
    assert len(rows) == before.num_layers == 4
    recorded = [col for metric, col in table_columns() if metric.recorded]
    for row in rows:
        for col in recorded:  # every key of every registered metric: finite and inside its declared bounds
            assert within_bounds(col, row[col.key]), (col.key, row)
    assert _no_hooks_left(model)
    assert model_layout(model).attentions[0].config._attn_implementation == "sdpa"
    n_valid = int(enc["attention_mask"].sum())
    hidden = capture.hidden_states()
    assert all(h.shape[0] == n_valid for h in hidden)  # padding rows dropped
    same = delta_cka_profile(hidden, collect_hidden_states(model, [dict(enc)]))
    assert max(abs(d) for d in same) < 1e-6
    sel = select_inflection_layers([r["attn_entropy"] for r in rows], [r["act_grad_norm"] for r in rows])
    assert sel.layers == [sel.layers[0]] and 0 <= sel.layers[0] < 4  # width ceil(4/4) = 1
