"""`tunescope bench sift`: SIFT vs full fine-tuning vs LoRA (peft, same trainable budget), side by side.

Default: minilm-l6, one batch of 32 x 64 tokens (random token ids, seeded; cost does not depend on the
text), rate 1% on attention q, k, v, o; LoRA rank chosen so that its adapter size matches SIFT's k-total
(r = round(sum k / sum (d_in + d_out)), adapters on the same q, k, v, o); the head trains densely in all three.
Reported:
- optimizer_state_bytes_*: training state after a step, counted alike for all three
  (strategies/sift/accounting.py): the optimizer's state tensors (AdamW moments, step counters) plus what the
  strategy adds beyond the pre-trained weights (SIFT: packed indices + base copy; LoRA: its adapter tensors,
  including peft's trained copy of the head), so nothing is hidden;
- grad_bytes_*: bytes of gradients held after backward (model .grad plus SIFT's sparse gradients);
- peak_rss_*: peak process RSS while building the variant and running its steps, each variant in a fresh
  process (spawned one after another), sampled every ~1 ms;
- step_ms_*: median wall time of forward + backward + optimizer step, variants interleaved step by step in
  one process so that machine load affects them alike.
Ratios: optimizer_state_ratio, grad_bytes_ratio, peak_rss_ratio, step_time_ratio = SIFT / full;
the *_lora_* ratios = SIFT / LoRA. Goals (issue 5): state <= 2 %, RSS < full, step time <= 1.2 x full.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import statistics
import time

import torch

from tunescope.bench import BENCHMARKS
from tunescope.bench._rss import peak_rss
from tunescope.errors import UserError
from tunescope.strategies.sift.accounting import adapter_tensors, state_bytes

VARIANTS = ("full", "sift", "lora")


def _options(options: dict) -> dict:
    try:
        out = {"model": str(options.get("model", "minilm-l6")), "batch_size": int(options.get("batch_size", 32)),
               "seq_len": int(options.get("seq_len", 64)), "rate": float(options.get("rate", 0.01)),
               "steps": int(options.get("steps", 5)), "warmup": int(options.get("warmup", 1)),
               "memory": str(options.get("memory", "true")).lower() in ("1", "true", "yes")}
    except ValueError as e:
        raise UserError(f"bad benchmark option: {e}; expected model=NAME batch_size=N seq_len=N rate=X steps=N") from None
    if not 0 < out["rate"] <= 1 or out["steps"] < 1 or out["batch_size"] < 1 or out["seq_len"] < 2:
        raise UserError(f"bad benchmark options {options}: expected rate in (0, 1], steps, batch_size >= 1, "
                        "seq_len >= 2")
    return out


def _batch(model, batch_size: int, seq_len: int) -> dict:
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, 2, (batch_size,), generator=g)}


def _build(variant: str, opts: dict):
    """(model, optimizer, batch, extra_grads, kept_tensors, info) for one variant."""
    from tunescope.models.layers import default_sift_targets, head_parameter_names
    from tunescope.models.load import load_classifier
    from tunescope.strategies.sift import SiftAdamW, SiftConfig, SiftEngine
    from tunescope.strategies.sift.config import num_selected, resolve_targets

    model, _ = load_classifier(opts["model"], 2)
    model.train()
    batch = _batch(model, opts["batch_size"], opts["seq_len"])
    targets = resolve_targets(model, None)
    k_total = sum(num_selected(p.numel(), opts["rate"]) for p in targets.values())
    if variant == "full":
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        return model, opt, batch, list, [], {"trainable": sum(p.numel() for p in model.parameters())}
    if variant == "sift":
        engine = SiftEngine(model, SiftConfig(rate=opts["rate"]), head_parameter_names(model))
        engine.select([batch])
        opt = SiftAdamW(engine, lr=1e-4)
        return (model, opt, batch, engine.sparse_grads, engine.bookkeeping_tensors(),
                {"trainable": engine.selected_params + engine.dense_params()})
    from peft import LoraConfig, TaskType, get_peft_model

    dims = sum(p.shape[0] + p.shape[1] for p in targets.values())
    rank = max(1, round(k_total / dims))
    patterns = default_sift_targets(model)
    regex = r".*\.(?:" + "|".join(re.escape(p) for p in patterns) + r")$"
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=regex,
                                             task_type=TaskType.SEQ_CLS))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    return (model, opt, batch, list, adapter_tensors(model),
            {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad), "lora_rank": rank})


def _step(model, opt, batch) -> None:
    model(**batch).loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def _grad_bytes(model, extra) -> int:
    return sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None) + \
        sum(g.numel() * g.element_size() for g in extra())


def _memory_child(variant: str, opts: dict, threads: int, queue) -> None:
    """In a fresh process: peak RSS while building `variant` and running warmup + steps."""
    torch.set_num_threads(threads)
    from tunescope.models.load import load_classifier

    load_classifier(opts["model"], 2)  # warm the file cache / imports outside the measured window
    with peak_rss() as peak:
        model, opt, batch, *_ = _build(variant, opts)
        for _ in range(opts["warmup"] + opts["steps"]):
            _step(model, opt, batch)
    queue.put((variant, peak[0]))


@BENCHMARKS.register("sift")
def bench_sift(options: dict) -> dict:
    """Measure SIFT / full / LoRA side by side (see the module docstring for what each number means)."""
    opts = _options(options)
    torch.manual_seed(0)
    built = {v: _build(v, opts) for v in VARIANTS}
    out: dict = {"model": opts["model"], "batch": f"{opts['batch_size']}x{opts['seq_len']}", "rate": opts["rate"],
                 "threads": torch.get_num_threads(), "steps": opts["steps"]}
    for v, (model, opt, batch, extra, kept, info) in built.items():
        model(**batch).loss.backward()
        out[f"grad_bytes_{v}"] = _grad_bytes(model, extra)
        opt.step()
        opt.zero_grad(set_to_none=True)
        out[f"optimizer_state_bytes_{v}"] = state_bytes(opt, kept)
        out[f"trainable_{v}"] = info["trainable"]
        if "lora_rank" in info:
            out["lora_rank"] = info["lora_rank"]
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(opts["warmup"] + opts["steps"]):
        for v, (model, opt, batch, *_rest) in built.items():
            t0 = time.perf_counter()
            _step(model, opt, batch)
            if i >= opts["warmup"]:
                times[v].append(time.perf_counter() - t0)
    for v in VARIANTS:
        out[f"step_ms_{v}"] = 1000 * statistics.median(times[v])
    del built
    if opts["memory"]:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        for v in VARIANTS:
            p = ctx.Process(target=_memory_child, args=(v, opts, torch.get_num_threads(), queue))
            p.start()
            variant, peak = queue.get()
            p.join()
            out[f"peak_rss_{variant}"] = peak
        out["peak_rss_ratio"] = out["peak_rss_sift"] / out["peak_rss_full"]
        out["peak_rss_ratio_lora"] = out["peak_rss_sift"] / out["peak_rss_lora"]
    out["optimizer_state_ratio"] = out["optimizer_state_bytes_sift"] / out["optimizer_state_bytes_full"]
    out["grad_bytes_ratio"] = out["grad_bytes_sift"] / out["grad_bytes_full"]
    out["step_time_ratio"] = out["step_ms_sift"] / out["step_ms_full"]
    out["optimizer_state_ratio_lora"] = out["optimizer_state_bytes_sift"] / out["optimizer_state_bytes_lora"]
    out["step_time_ratio_lora"] = out["step_ms_sift"] / out["step_ms_lora"]
    return out
