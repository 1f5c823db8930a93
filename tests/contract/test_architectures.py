"""Architecture discovery: tiny random models of many transformers model types, built from their configs.

On every supported type: the discovered layout, the per-layer diagnostics (attention entropy equal to an eager
output_attentions reference), one LoRA step on the discovered default targets, one SIFT step, and the jump
metric. Types whose attention does not go through transformers' attention interface are refused, before any
weights are loaded.
"""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model

from tunescope.diagnostics.jump import jump_profile
from tunescope.diagnostics.layerwise import layer_diagnostics
from tunescope.errors import UserError
from tunescope.models.layers import (
    default_lora_targets,
    default_sift_targets,
    head_parameter_names,
    model_layout,
)
from tunescope.models.tiny import (
    DISCOVERY_ARCHITECTURES,
    tiny_causal_lm,
    tiny_classifier,
    tiny_tokenizer,
    toy_sentiment,
)
from tunescope.strategies.sift import SiftAdamW, SiftConfig, SiftEngine

pytestmark = pytest.mark.usefixtures("one_thread")

LAYERS = 3
# Attention outside transformers' attention interface (DeBERTa's disentangled attention, Falcon's own kernels).
REFUSED = ("deberta-v2", "falcon")
SUPPORTED = tuple(a for a in DISCOVERY_ARCHITECTURES if a not in REFUSED)
ENCODERS = ("bert", "roberta", "distilbert", "electra", "modernbert")
DECODERS = tuple(a for a in SUPPORTED if a not in ENCODERS)

# Today's defaults for the types tunescope supported before discovery, kept exactly.
EXPECTED_LORA = {
    "bert": ["query", "key", "value"], "roberta": ["query", "key", "value"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
_QKVO = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
EXPECTED_SIFT = {
    "bert": ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"],
    "roberta": ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"],
    "distilbert": ["attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin"],
    "gpt2": ["attn.c_attn", "attn.c_proj"], "llama": _QKVO, "qwen2": _QKVO, "mistral": _QKVO,
}


@pytest.fixture(scope="module")
def tok():
    texts, _ = toy_sentiment(64, seed=0)
    return tiny_tokenizer(texts)


@pytest.fixture(scope="module")
def batch(tok):
    texts, labels = toy_sentiment(6, seed=4)
    enc = dict(tok(texts, padding=True, return_tensors="pt"))
    assert (enc["attention_mask"] == 0).any() and enc["input_ids"].shape[1] <= 16
    enc["labels"] = torch.tensor(labels)
    return enc


def _lm_batch(batch: dict) -> dict:
    out = {k: v for k, v in batch.items() if k != "labels"}
    out["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return out


def _sharpen(model, layout, factor: float = 20.0) -> None:
    """Make the attention far from uniform (a stronger entropy check): scale the attention projections, and
    the output of q / k norms where q and k are normalised after projecting (Qwen 3, OLMo 2, Gemma 3)."""
    with torch.no_grad():
        for attention in layout.attentions:
            for module in attention.children():
                if isinstance(getattr(module, "weight", None), torch.nn.Parameter) and module.weight.dim() == 2:
                    module.weight.mul_(factor)
                elif "norm" in type(module).__name__.lower():
                    module.register_forward_hook(lambda _m, _a, out: out * factor)


def _eager_attentions(model, inputs: dict, *, zero_qk: bool = False) -> tuple:
    """The eager kernel's attention weights [B, H, T, T] per layer (output_attentions=True).

    zero_qk: every attention projection (and q / k norm) outputs zeros, so each query attends uniformly to
    exactly the keys the kernel's mask allows (padding, causal, sliding window): weight > 0 marks them.
    """
    handles = []
    if zero_qk:
        for attention in model_layout(model).attentions:
            for module in attention.children():
                if isinstance(getattr(module, "weight", None), torch.nn.Parameter):
                    handles.append(module.register_forward_hook(lambda _m, _a, out: out * 0))
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return model(**{k: v for k, v in inputs.items() if k != "labels"}, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(impl)
        for h in handles:
            h.remove()


def _eager_entropy(model, inputs: dict) -> list[tuple[float, float]]:
    """Per layer (H, H_norm) straight from the eager kernel's attention weights: mean over heads and real
    queries of -sum_j a_ij log a_ij over the allowed keys j; H_i / log n_i over queries with n_i >= 2."""
    valid = inputs["attention_mask"].bool()
    result = []
    for a, uniform in zip(_eager_attentions(model, inputs), _eager_attentions(model, inputs, zero_qk=True)):
        a = a.double()
        allowed = valid[:, None, None, :] & (uniform > 0)
        h = -torch.where(allowed, a * torch.log(a.clamp_min(1e-300)), torch.zeros_like(a)).sum(-1)  # [B, H, T]
        n = allowed.sum(-1)
        rows = valid[:, None, :].expand_as(h)
        norm_rows = rows & (n >= 2)
        h_norm = h / torch.log(n.clamp_min(2).double())
        result.append((float(h[rows].mean()), float(h_norm[norm_rows].mean())))
    return result


def _check_entropy(model, inputs: dict) -> None:
    layout = model_layout(model)
    _sharpen(model, layout)
    rows, _ = layer_diagnostics(model, [inputs])
    reference = _eager_entropy(model, inputs)
    assert len(rows) == len(reference) == LAYERS
    assert min(hn for _, hn in reference) < 0.9  # really not uniform (1 = uniform over the allowed keys)
    for row, (h_ref, hn_ref) in zip(rows, reference):
        assert row["attn_entropy"] == pytest.approx(h_ref, abs=1e-5)
        assert row["attn_entropy_norm"] == pytest.approx(hn_ref, abs=1e-5)
        for key in ("act_grad_norm", "param_grad_norm"):
            assert math.isfinite(row[key]) and row[key] >= 0


def test_discovery_covers_at_least_15_types():
    assert len(SUPPORTED) >= 15 and set(EXPECTED_LORA) | set(EXPECTED_SIFT) <= set(SUPPORTED)


@pytest.mark.parametrize("arch", SUPPORTED)
def test_classifier_layout_diagnostics_lora_sift_jump(arch, tok, batch):
    model = tiny_classifier(arch, tok, num_layers=LAYERS, seed=1)
    layout = model_layout(model)
    assert layout.model_type == arch and layout.num_layers == LAYERS == len(layout.attentions)
    assert layout.family == ("encoder" if arch in ENCODERS else "decoder")
    assert layout.head is not None and layout.head_name in ("classifier", "score")
    assert layout.embeddings is not None
    names = [n for n, _ in model.named_parameters()]
    assert all(any(n.startswith(p) for n in names) for p in layout.block_prefixes)
    if arch in EXPECTED_LORA:
        assert default_lora_targets(model) == EXPECTED_LORA[arch]
    if arch in EXPECTED_SIFT:
        assert default_sift_targets(model) == EXPECTED_SIFT[arch]

    _check_entropy(model, batch)
    _lora_step(tiny_classifier(arch, tok, num_layers=LAYERS, seed=2), batch)
    _sift_step(tiny_classifier(arch, tok, num_layers=LAYERS, seed=3), batch)

    profile = jump_profile(model, [batch])
    assert len(profile.psi) == LAYERS and all(0.0 <= p <= 1.0 for p in profile.psi)
    assert profile.tokens == int(batch["attention_mask"].sum()) and math.isfinite(profile.J)


@pytest.mark.parametrize("arch", DECODERS)
def test_causal_lm_layout_diagnostics_jump(arch, tok, batch):
    model = tiny_causal_lm(arch, tok, num_layers=LAYERS, seed=1)
    layout = model_layout(model)
    assert layout.family == "decoder" and layout.head is model.get_output_embeddings()
    assert layout.final_norm is not None  # pre-norm decoders normalise after the last block
    inputs = _lm_batch(batch)
    _check_entropy(model, inputs)
    profile = jump_profile(model, [inputs])
    assert len(profile.psi) == LAYERS and math.isfinite(profile.J)


def _step(model, params, batch) -> float:
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    loss = model(**batch).loss
    loss.backward()
    opt.step()
    return float(loss)


def _lora_step(model, batch) -> None:
    targets = default_lora_targets(model)
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, lora_dropout=0.0, target_modules=targets,
                                                  task_type=TaskType.SEQ_CLS))
    layout = model_layout(peft_model)
    adapted = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A.default")]
    assert len(adapted) == LAYERS * len(targets)  # every target in every block, nothing else
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    assert math.isfinite(_step(peft_model, trainable, batch))
    head = set(head_parameter_names(peft_model))
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and any("lora_B" in n for n in changed)
    assert all("lora_" in n or "modules_to_save" in n or n in head for n in changed), changed
    assert layout.num_layers == LAYERS


def _sift_step(model, batch) -> None:
    patterns = default_sift_targets(model)
    engine = SiftEngine(model, SiftConfig(rate=0.05), head_parameter_names(model))
    assert len(engine.slots) == LAYERS * len(patterns)
    engine.select([batch])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = SiftAdamW(engine, lr=1e-2)
    model.train()
    loss = model(**batch).loss
    assert math.isfinite(float(loss))
    loss.backward()
    opt.step()
    for name, p in model.named_parameters():
        diff = (p.detach() != before[name]).reshape(-1)
        if name in engine.slots:
            slot = engine.slots[name]
            assert int(diff.sum()) == slot.k, name  # exactly the k selected entries move
            assert bool(diff[slot.indices].all())
        elif name not in engine.dense:
            assert not bool(diff.any()), name  # frozen: bit-identical
    engine.remove()


@pytest.mark.parametrize("arch", REFUSED)
def test_unsupported_type_is_refused_by_layout(arch, tok):
    model = tiny_classifier(arch, tok, num_layers=2)
    with pytest.raises(UserError, match=rf"unsupported architecture '{arch}'.*attention interface"):
        model_layout(model)


@pytest.mark.parametrize("arch", REFUSED)
def test_unsupported_type_is_refused_before_weights_load(arch, tok, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    from tunescope.models.load import load_causal_lm, load_classifier
    from tunescope.models.tiny import tiny_config

    tiny_config(arch, len(tok), num_layers=2).save_pretrained(tmp_path)
    # A valid but empty safetensors file: the folder check (models/checkpoint_check.py) reads its header only.
    (tmp_path / "model.safetensors").write_bytes(b"\x02\0\0\0\0\0\0\0{}")

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded for a refused model type")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(no_weights))
    with pytest.raises(UserError, match=rf"unsupported architecture '{arch}'.*attention interface"):
        load_classifier(str(tmp_path), 2)
    with pytest.raises(UserError, match=rf"unsupported architecture '{arch}'"):  # deberta-v2: no causal-LM class
        load_causal_lm(str(tmp_path))


def test_gemma3_text_folder_loads(tok, tmp_path):
    """The issue's case: a Gemma 3 text checkpoint folder used to be refused as an unsupported architecture."""
    from tunescope.models.load import load_classifier

    tiny_classifier("gemma3_text", tok, num_layers=2).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, _ = load_classifier(str(tmp_path), 2)
    layout = model_layout(model)
    assert layout.model_type == "gemma3_text" and layout.num_layers == 2 and layout.family == "decoder"
