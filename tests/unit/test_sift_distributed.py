"""Two CPU processes (torch.distributed, gloo): the mask is chosen from the all-reduced gradient, and a
DDP step updates the selected entries with the mean gradient of both processes."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.unit._sift_helpers import batch, dense_grads, engine, half, model, tokenizer

RATE, LR = 0.03, 0.1


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from tunescope.strategies.sift.optimizer import SiftAdamW

        tok = tokenizer()
        local = half(batch(tok, 16, 7), rank)  # each process sees different examples
        m = model(tok=tok, dropout=False)
        e = engine(m, rate=RATE)
        e.select([local])
        ddp = torch.nn.parallel.DistributedDataParallel(m)  # targets are ignored by DDP, the head is not
        opt = SiftAdamW(e, lr=LR, kind="sgd")
        ddp(**local).loss.backward()
        opt.step()
        torch.save({"indices": {n: s.indices for n, s in e.slots.items()},
                    "weights": {n: p.detach().clone() for n, p in m.named_parameters()}},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # both ranks leave together (see tests/integration/test_fsdp_dtensor.py)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(240)
def test_two_process_selection_and_step_use_the_all_reduced_gradient(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    names = list(r0["indices"])
    for n in r0["weights"]:  # both processes hold the same model after the step
        assert torch.equal(r0["weights"][n], r1["weights"][n])

    # Independent single-process reference: the mean of both processes' gradients.
    tok = tokenizer()
    full = batch(tok, 16, 7)
    m = model(tok=tok, dropout=False)
    base = {n: p.detach().clone() for n, p in m.named_parameters()}
    g0 = dense_grads(m, [half(full, 0)], names, train=True)
    g1 = dense_grads(m, [half(full, 1)], names, train=True)
    ks = {n: s.k for n, s in engine(model(tok=tok), rate=RATE).slots.items()}
    local_differs = False
    for n in names:
        mean = (g0[n] + g1[n]).reshape(-1) / 2
        idx = r0["indices"][n]
        assert torch.equal(idx, r1["indices"][n]) and idx.numel() == ks[n]
        chosen = torch.zeros(mean.numel(), dtype=torch.bool)
        chosen[idx] = True
        assert mean.abs()[chosen].min() >= mean.abs()[~chosen].max()  # top-k of the reduced gradient
        local_top = torch.topk(g0[n].reshape(-1).abs(), ks[n]).indices.sort().values
        local_differs |= not torch.equal(local_top, idx)
        w = r0["weights"][n].reshape(-1)
        torch.testing.assert_close(w[idx], base[n].reshape(-1)[idx] - LR * mean[idx], atol=1e-7, rtol=1e-6)
        assert torch.equal(w[~chosen], base[n].reshape(-1)[~chosen])
    assert local_differs  # rank 0's own gradient alone would have chosen other entries
