"""Training-state bytes (strategies/sift/accounting.py) against hand counts for SIFT and LoRA on a tiny Llama."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model

from tests.unit._sift_helpers import batch, engine, model, tokenizer
from tunescope.models.layers import default_lora_targets
from tunescope.strategies.sift.accounting import (
    adapter_tensors,
    state_bytes,
    tensor_bytes,
)
from tunescope.strategies.sift.optimizer import SiftAdamW

pytestmark = pytest.mark.usefixtures("one_thread")
RATE = 0.05


def _index_bytes(numel: int, k: int) -> int:
    """Packed index bytes by hand: int16 offsets + int32 pointers per 32,768-entry block, or int32 [k]."""
    return min(2 * k + 4 * (math.ceil(numel / 32768) + 1), 4 * k)


def _sift_after_one_step(dtype: torch.dtype):
    tok = tokenizer()
    m = model("llama", tok=tok).to(dtype)
    e = engine(m, rate=RATE, mask="random")
    e.select([])
    opt = SiftAdamW(e, lr=1e-3)
    m(**batch(tok, 8, 0)).loss.backward()
    opt.step()
    return e, opt


def test_sift_state_is_moments_packed_indices_and_base_for_fp32_weights():
    e, opt = _sift_after_one_step(torch.float32)
    expected = 0
    for s in e.slots.values():
        n = s.weight.numel()
        k = math.floor(RATE * n) + 1
        expected += 8 * k + 4 * k + _index_bytes(n, k)  # two fp32 moments + fp32 base + packed indices
    head = sum(p.numel() for p in e.dense.values())
    expected += 8 * head  # the dense head: its two moments (its weights are the model's own)
    assert state_bytes(opt, e.bookkeeping_tensors()) == expected
    assert e.bookkeeping_bytes() == expected - 8 * (e.selected_params + head)


def test_sift_state_of_a_bf16_model_adds_the_fp32_master_and_halves_the_base():
    e, opt = _sift_after_one_step(torch.bfloat16)
    expected = sum(8 * s.k + 4 * s.k + 2 * s.k + _index_bytes(s.weight.numel(), s.k) for s in e.slots.values())
    expected += 8 * sum(p.numel() for p in e.dense.values())
    assert state_bytes(opt, e.bookkeeping_tensors()) == expected


def test_lora_state_is_adapters_plus_moments_plus_step_counters():
    tok = tokenizer()
    m = model("llama", tok=tok)
    r = 2
    peft_model = get_peft_model(m, LoraConfig(r=r, lora_alpha=4, lora_dropout=0.0,
                                              target_modules=default_lora_targets(m), task_type=TaskType.SEQ_CLS))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    peft_model(**batch(tok, 8, 0)).loss.backward()
    opt.step()
    # tiny Llama (hidden 32, 4 heads, 2 KV heads of 8): q, o are 32 x 32 and k, v 16 x 32; an adapter on an
    # out x in weight has A (r x in) + B (out x r) = r (in + out) entries; 4 blocks
    lora = 4 * r * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32))
    head = 2 * 32  # peft's trained copy of the 2 x 32 score head (modules_to_save)
    tensors = 4 * 4 * 2 + 1
    expected = 4 * (lora + head) + 8 * (lora + head) + 4 * tensors  # entries + two moments + 0-d fp32 steps
    assert sum(p.numel() for p in trainable) == lora + head
    assert state_bytes(opt, adapter_tensors(peft_model)) == expected


def test_a_tensor_listed_twice_is_counted_once():
    t = torch.zeros(10)
    assert tensor_bytes([t, t, t[:10], torch.zeros(3, dtype=torch.int16)]) == 40 + 6
    assert state_bytes(None, [t]) == 40
