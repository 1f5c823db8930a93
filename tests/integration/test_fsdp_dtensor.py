"""Two CPU processes (gloo) holding FSDP2 / DTensor shards: the numbers diagnostics/sharded.py computes from the
shards are those of the full tensors, checked against a single-process computation of the same tensors.

- squared norms of Shard(0) (uneven rows), Shard(1) and Replicate tensors; the plain shard-local reading is wrong;
- the per-layer table of a `fully_shard`-ed tiny Llama (LoRA-like: most weights frozen) equals
  `layer_diagnostics` of the unsharded model, and the training step's `.grad` is left as it was;
- SIFT's top-k (`strategies.sift.mask.topk_indices`) of a sharded score is the single-process top-k, also for a k
  larger than a shard.
"""

from __future__ import annotations

import copy
import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

RTOL = 1e-5  # the same sums in another order


def _check_norms_and_topk(rank: int) -> None:
    from torch.distributed.tensor import (
        Replicate,
        Shard,
        distribute_tensor,
        init_device_mesh,
    )

    from tunescope.diagnostics.sharded import grouped_squared_sums
    from tunescope.strategies.sift.mask import topk_indices

    mesh = init_device_mesh("cpu", (2,))
    gen = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(5, 3, generator=gen), torch.randn(7, 4, generator=gen), torch.randn(2, 2, generator=gen)
    shards = [distribute_tensor(a, mesh, [Shard(0)]), distribute_tensor(b, mesh, [Shard(1)]),
              distribute_tensor(c, mesh, [Replicate()]), None, c]  # a plain tensor next to DTensors
    got = grouped_squared_sums(shards, [0, 1, 1, 0, 0], 2)
    want = [float(a.double().pow(2).sum() + c.double().pow(2).sum()),
            float(b.double().pow(2).sum() + c.double().pow(2).sum())]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=RTOL, atol=0)
    naive = float(shards[0].pow(2).sum())  # what float() of a shard's sum gives: this process's part only
    assert abs(naive - float(a.pow(2).sum())) > 1e-3, "the shard-local reading should differ from the full norm"

    score = torch.randn(5, 3, generator=gen)
    for k in (1, 4, 12, 15):  # rank 0 holds 9 entries, rank 1 holds 6: k = 12 exceeds both shards
        assert torch.equal(topk_indices(distribute_tensor(score, mesh, [Shard(0)]), k), topk_indices(score, k)), k
    assert torch.equal(topk_indices(distribute_tensor(b, mesh, [Shard(1)]), 5), topk_indices(b, 5))  # gathered


def _check_layer_table(rank: int) -> None:
    from torch.distributed.fsdp import fully_shard

    from tests.unit._sift_helpers import batch, model, tokenizer
    from tunescope.diagnostics.layerwise import layer_diagnostics
    from tunescope.diagnostics.sharded import is_sharded, sharded_layer_diagnostics
    from tunescope.models.layers import model_layout

    tok = tokenizer()
    probe = [batch(tok, 8, 3), batch(tok, 8, 4)]  # the same probe batches on both processes
    m = model("llama", tok=tok, dropout=False)
    for name, p in m.named_parameters():  # LoRA-like: the blocks frozen, the head trains
        p.requires_grad_("score" in name)
    reference, _ = layer_diagnostics(copy.deepcopy(m), probe)
    for block in model_layout(m).blocks:
        fully_shard(block)
    fully_shard(m)
    assert is_sharded(m)
    m(**batch(tok, 8, 5 + rank)).loss.backward()  # a training step's gradient (head only), to be left alone
    head = next(p for n, p in m.named_parameters() if "score" in n)
    before = head.grad.to_local().clone()
    rows = sharded_layer_diagnostics(m, probe)
    assert torch.equal(head.grad.to_local(), before)
    assert all(p.grad is None for n, p in m.named_parameters() if "score" not in n)
    keys = [k for k in reference[0] if k != "layer"]
    assert {"param_grad_norm", "param_grad_rel", "act_grad_norm", "attn_entropy"} <= set(keys)
    for got, want in zip(rows, reference):
        for key in keys:
            assert got[key] == pytest.approx(want[key], rel=RTOL, abs=1e-9), (got["layer"], key)


def _worker(rank: int, world: int, init_file: str, errors_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        _check_norms_and_topk(rank)
        _check_layer_table(rank)
        # Both ranks leave together: a rank tearing gloo down while the other still talks to it aborted once
        # ("terminate called without an active exception", SIGABRT after every check had passed).
        dist.barrier()
    except BaseException:  # the parent reports it: mp.spawn alone would only say that a process failed
        with open(os.path.join(errors_dir, f"rank{rank}.txt"), "w") as f:
            f.write(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_sharded_norms_table_and_topk_equal_the_full_tensors(tmp_path):
    try:
        mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        reports = sorted(tmp_path.glob("rank*.txt"))
        pytest.fail("\n".join(r.read_text() for r in reports) or "a worker failed", pytrace=False)
