"""results["memory"]: optimizer / training state bytes counted from the tensors, and the training-phase peak RSS."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from tunescope.training.memory import peak_rss_bytes, reset_peak_rss, training_memory


def test_adamw_state_is_two_fp32_moments_per_entry_plus_a_step_per_tensor():
    model = nn.Sequential(nn.Linear(10, 7), nn.Linear(7, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 10)).sum().backward()
    optimizer.step()
    n = sum(p.numel() for p in model.parameters())
    steps = sum(s["step"].numel() * s["step"].element_size() for s in optimizer.state.values())
    memory = training_memory(optimizer, model, reset_before_training=False)
    assert memory["optimizer_state_bytes"] == 8 * n + steps
    assert memory["training_state_bytes"] == memory["optimizer_state_bytes"]  # full FT adds no tensors
    assert memory["peak_rss_scope"] == "process" and memory["peak_rss_bytes"] > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM reset is Linux-only")
def test_peak_rss_after_a_reset_sees_a_later_allocation_and_forgets_an_earlier_one():
    block = 256 * 2 ** 20
    early = bytearray(block)  # touched pages: counted in the RSS
    del early
    assert reset_peak_rss()
    after_reset = peak_rss_bytes()
    late = bytearray(block)
    peak = peak_rss_bytes()
    del late
    assert peak - after_reset >= 0.9 * block
    assert after_reset < peak
