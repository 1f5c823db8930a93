"""Gradient norms from the one-pass diagnostics equal a direct autograd computation."""

import math

import pytest
import torch

from tunescope.diagnostics.layerwise import layer_diagnostics
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment


def _batches(tok, n=12, seed=0, size=6):
    texts, labels = toy_sentiment(n, seed=seed)
    out = []
    for s in range(0, n, size):
        enc = tok(texts[s:s + size], padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor(labels[s:s + size])
        out.append(dict(enc))
    return out


def _direct(model, batches, arch):
    """retain_grad on every block output + loss.backward(); parameters grouped by their name prefix."""
    prefix = {"bert": "bert.encoder.layer.", "gpt2": "transformer.h.", "llama": "model.layers."}[arch]
    n_layers = model.config.num_hidden_layers
    sums, counts = [0.0] * n_layers, [0] * n_layers
    model.zero_grad(set_to_none=True)
    model.eval()
    blocks = {"bert": lambda: model.bert.encoder.layer, "gpt2": lambda: model.transformer.h,
              "llama": lambda: model.model.layers}[arch]()
    for batch in batches:
        outs = []
        handles = [b.register_forward_hook(lambda m, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
                   for b in blocks]
        for h in outs:
            h.retain_grad()
        loss = model(**batch).loss / len(batches)
        for h in handles:
            h.remove()
        for h in outs:
            h.retain_grad()
        loss.backward()
        valid = batch["attention_mask"].bool()
        for i, h in enumerate(outs):
            norms = h.grad.norm(dim=-1)[valid]
            sums[i] += float(norms.sum())
            counts[i] += norms.numel()
    act = [s / c for s, c in zip(sums, counts)]
    g2, w2 = [0.0] * n_layers, [0.0] * n_layers
    for name, p in model.named_parameters():
        if name.startswith(prefix):
            i = int(name[len(prefix):].split(".")[0])
            g2[i] += float(p.grad.pow(2).sum())
            w2[i] += float(p.detach().pow(2).sum())
    model.zero_grad(set_to_none=True)
    return act, [math.sqrt(g) for g in g2], [math.sqrt(g / w) for g, w in zip(g2, w2)]


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_gradient_norms_equal_direct_autograd(arch):
    texts, _ = toy_sentiment(12)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier(arch, tok)
    batches = _batches(tok)
    # Different lengths per batch => padding in each; our one pass must mask it exactly as the reference.
    rows, _ = layer_diagnostics(model, batches, metrics=["act_grad_norm", "param_grad_norm"])
    assert all(p.grad is None for p in model.parameters())  # autograd.grad leaves .grad alone
    act, g, rel = _direct(model, batches, arch)
    for row, a, gi, ri in zip(rows, act, g, rel):
        assert row["act_grad_norm"] == pytest.approx(a, rel=1e-4)
        assert row["param_grad_norm"] == pytest.approx(gi, rel=1e-4)
        assert row["param_grad_rel"] == pytest.approx(ri, rel=1e-4)


def test_frozen_model_is_probed_and_flags_restored():
    from peft import LoraConfig, get_peft_model

    texts, _ = toy_sentiment(12)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier("bert", tok)
    reference, _ = layer_diagnostics(model, _batches(tok), metrics=["act_grad_norm", "param_grad_norm"])
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["query", "value"], layers_to_transform=[3]))
    flags = {n: p.requires_grad for n, p in peft_model.named_parameters()}
    rows, _ = layer_diagnostics(peft_model, _batches(tok), metrics=["act_grad_norm", "param_grad_norm"])
    assert flags == {n: p.requires_grad for n, p in peft_model.named_parameters()}
    assert all(math.isfinite(r["param_grad_norm"]) and r["param_grad_norm"] > 0 for r in rows)
    # LoRA B starts at zero, so the function is unchanged: activation gradients equal the plain model's.
    for r, ref in zip(rows, reference):
        assert r["act_grad_norm"] == pytest.approx(ref["act_grad_norm"], rel=1e-4)
    assert not any(m._forward_hooks for m in peft_model.modules())
