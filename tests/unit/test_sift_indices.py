"""SIFT's compact state: packed indices decode to the exact positions, the smaller layout is chosen, and an fp32
weight holds its own increment exactly (no copy of it is kept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunescope.strategies.sift.indices import BLOCK, PackedIndices

pytestmark = pytest.mark.usefixtures("one_thread")


def _sorted_sample(numel: int, k: int, seed: int) -> torch.Tensor:
    return torch.randperm(numel, generator=torch.Generator().manual_seed(seed))[:k].sort().values


@pytest.mark.parametrize("numel,k", [(331_776, 11_519), (110_592, 3_840), (3 * BLOCK + 5, 200), (1024, 103),
                                     (1_000_000, 20), (BLOCK, BLOCK), (7, 1)])
def test_pack_round_trips_and_keeps_the_smaller_layout(numel, k):
    idx = _sorted_sample(numel, k, seed=numel)
    packed = PackedIndices.pack(idx, numel)
    assert torch.equal(packed.flat(), idx) and packed.flat().dtype == torch.int64
    n_blocks = -(-numel // BLOCK)
    blocks, flat = 2 * k + 4 * (n_blocks + 1), 4 * k  # hand count of both layouts
    assert packed.nbytes == min(blocks, flat)
    assert packed.layout == ("blocks" if blocks < flat else "flat")


def test_block_layout_at_smollm2_equal_lora_budget():
    """q_proj of SmolLM2-135M (576 x 576) at the rate whose k matches LoRA r=8: int16 offsets + 12 block pointers,
    2.004 bytes per entry where int64 indices took 8."""
    idx = _sorted_sample(576 * 576, 11_519, seed=0)
    packed = PackedIndices.pack(idx, 576 * 576)
    assert packed.layout == "blocks" and packed.values.dtype == torch.int16 and packed.starts.dtype == torch.int32
    assert packed.nbytes == 2 * 11_519 + 4 * (11 + 1)  # ceil(331,776 / 32,768) = 11 blocks


def test_first_and_last_positions_of_a_block_survive():
    numel = 4 * BLOCK
    idx = torch.tensor([0, BLOCK - 1, BLOCK, 2 * BLOCK - 1, 4 * BLOCK - 1])
    assert torch.equal(PackedIndices.pack(idx, numel).flat(), idx)


@pytest.mark.parametrize("bad", [[3, 2], [1, 1], [-1, 2], [2, 10]])
def test_unsorted_repeated_or_out_of_range_indices_are_refused(bad):
    with pytest.raises(ValueError):
        PackedIndices.pack(torch.tensor(bad), 10)


def _round_trip_fails(base: np.ndarray, delta: np.ndarray) -> int:
    """How many w = fl(base + delta) fail fl(base + fl(w - base)) == w in fp32 (what SparseSlot relies on: an
    fp32 weight written as base + delta gives back an increment that rebuilds it exactly)."""
    w = (base + delta).astype(np.float32)
    again = (base + (w - base).astype(np.float32)).astype(np.float32)
    return int((again != w).sum())


def test_an_fp32_weight_rebuilds_from_its_recovered_increment_exactly():
    rng = np.random.default_rng(0)
    n = 1_000_000
    mags = lambda: rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-10, 1, n)
    base = mags().astype(np.float32)
    assert _round_trip_fails(base, mags().astype(np.float32)) == 0  # unrelated magnitudes
    near = (-base * (1 + rng.normal(0, 10.0 ** rng.uniform(-8, 0, n)))).astype(np.float32)
    assert _round_trip_fails(base, near) == 0  # cancellation: w much smaller than base
    small = (base * 10.0 ** rng.uniform(-9, -3, n)).astype(np.float32)
    assert _round_trip_fails(base, small) == 0  # fine-tuning-sized steps
    # binade edges and ties: base at powers of two, increments of a quarter / half ulp
    two = np.float32(2.0) ** rng.integers(-20, 20, n).astype(np.float32)
    ulp = np.spacing(two)
    for frac in (-0.25, 0.25, 0.5, -0.5, 1.5, -0.75):
        assert _round_trip_fails(two, (ulp * frac).astype(np.float32)) == 0
        assert _round_trip_fails(-two, (ulp * frac).astype(np.float32)) == 0
