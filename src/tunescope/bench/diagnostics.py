"""`tunescope bench diagnostics`: cost of the per-layer diagnostics, measured side by side in one process.

Default: minilm-l6, one batch of 32 x 64 tokens of rotten_tomatoes text. Reported (medians over `repeats`,
measurements interleaved so machine load affects all variants alike):
- overhead_ratio: a training step (forward, backward, AdamW step) with every diagnostic recorded during that same
  step (SDPA entropy wrapper, activation-gradient tensor hooks, parameter-gradient norms from .grad) / a plain step;
- naive_speedup: the naive way / our one-pass probe. Naive = eager attention with output_attentions=True for the
  entropy, a second forward+backward with output_hidden_states + retain_grad for activation gradients, and a third
  forward+backward for parameter gradients (one pass per metric). Ours = `layer_diagnostics` (one forward, one
  autograd.grad);
- peak_mem_ratio: peak extra memory of the instrumented step / the plain step (CUDA allocator peak on GPU, peak of
  the torch profiler's allocation events on CPU); naive_peak_mem_ratio: naive / ours.
Option only=memory skips the timing (the memory figures alone).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from tunescope.bench import BENCHMARKS
from tunescope.diagnostics.attention import masked_attention_entropy
from tunescope.diagnostics.layerwise import (
    METRICS,
    LayerCapture,
    layer_diagnostics,
    training_step_table,
)
from tunescope.errors import UserError
from tunescope.models.layers import model_layout


class _PeakMemory:
    """Peak extra memory allocated during a call: the CUDA allocator's peak on GPU; on CPU, the peak of the running
    sum of the tensor allocations/frees the torch profiler records (`profile_memory=True`)."""

    def __init__(self, device: torch.device):
        self.device = device

    def measure(self, fn: Callable[[], None]) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            torch.cuda.synchronize()
            return float(torch.cuda.max_memory_allocated() - base)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        # Ops carry their own net allocation (self, children excluded); "[memory]" events are frees outside ops.
        deltas = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                        for e in prof.events())
        current = peak = 0
        for _, delta in deltas:
            current += delta
            peak = max(peak, current)
        return float(max(peak, 1))


def _load(options: dict):
    name = str(options.get("model", "minilm-l6"))
    batch_size, seq_len = int(options.get("batch_size", 32)), int(options.get("seq_len", 64))
    if name == "tiny":  # a seconds-long smoke run for tests
        from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

        texts, labels = toy_sentiment(batch_size)
        tok = tiny_tokenizer(texts)
        model = tiny_classifier("bert", tok)
    else:
        from tunescope.data import load_classification
        from tunescope.models.load import load_classifier

        data = load_classification(str(options.get("data", "rotten_tomatoes")), limit=batch_size)
        texts, labels = list(data.train["text"])[:batch_size], list(data.train["label"])[:batch_size]
        model, tok = load_classifier(name, num_labels=data.num_labels)
    if len(texts) < batch_size:
        raise UserError(f"bad value {batch_size} for batch_size: the data has only {len(texts)} examples")
    enc = tok(texts, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
    enc["labels"] = torch.tensor(labels)
    device = torch.device(str(options.get("device", "cuda" if torch.cuda.is_available() else "cpu")))
    return model.to(device), {k: v.to(device) for k, v in enc.items()}, device


def _naive(model, batch) -> list[dict]:
    """The naive way, one pass per metric (see module docstring)."""
    layout = model_layout(model)
    n = layout.num_layers
    valid = batch["attention_mask"].bool()
    rows = [{"layer": i} for i in range(n)]
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attn = model(**batch, output_attentions=True).attentions
        for i, a in enumerate(attn):
            allowed = valid[:, None, None, :].expand_as(a)
            s, c, _, _ = masked_attention_entropy(a, allowed, valid)
            rows[i]["attn_entropy"] = float(s / c)
    finally:
        model.set_attn_implementation(impl)
    out = model(**batch, output_hidden_states=True)
    hidden = out.hidden_states[1:]
    for h in hidden:
        h.retain_grad()
    out.loss.backward()
    for i, h in enumerate(hidden):
        rows[i]["act_grad_norm"] = float(h.grad.norm(dim=-1)[valid].mean())
    model.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    for i, prefix in enumerate(layout.block_prefixes):
        sq = sum(float(p.grad.pow(2).sum()) for name, p in model.named_parameters()
                 if name.startswith(prefix) and p.grad is not None)
        rows[i]["param_grad_norm"] = sq ** 0.5
    model.zero_grad(set_to_none=True)
    return rows


@BENCHMARKS.register("diagnostics")
def bench_diagnostics(options: dict) -> dict:
    """Options: model (minilm-l6 | tiny | any classifier), batch_size 32, seq_len 64, repeats 5, device, threads."""
    repeats = int(options.get("repeats", 5))
    if repeats < 1:
        raise UserError(f"bad value {repeats} for repeats: expected an integer >= 1")
    previous_threads = torch.get_num_threads()
    if "threads" in options:  # e.g. threads=1 on a shared machine: oversubscribed thread pools distort ratios
        torch.set_num_threads(int(options["threads"]))
    try:
        return _measure(options, repeats)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(options: dict, repeats: int) -> dict:
    model, batch, device = _load(options)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    layout = model_layout(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def plain_step():
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def instrumented_step():
        capture = LayerCapture(layout, METRICS)
        capture.set_batch(batch["attention_mask"])
        with capture.instrument(model):
            model(**batch).loss.backward()
        training_step_table(model, capture)  # reads the parameter-gradient norms before the step
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def ours():
        layer_diagnostics(model, [batch])

    def naive():
        _naive(model, batch)

    variants = {"plain": plain_step, "instrumented": instrumented_step, "ours": ours, "naive": naive}
    if str(options.get("only", "")) == "memory":
        repeats = 0
    for fn in variants.values():  # warm-up (first-call allocations, kernel selection)
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
    mem = _PeakMemory(device)
    peak = {k: mem.measure(fn) for k, fn in variants.items()}
    return {
        "model": str(options.get("model", "minilm-l6")),
        "batch": f"{batch['input_ids'].shape[0]}x{batch['input_ids'].shape[1]}",
        "device": device.type,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "plain_step_s": med["plain"],
        "instrumented_step_s": med["instrumented"],
        "ours_probe_s": med["ours"],
        "naive_probe_s": med["naive"],
        "overhead_ratio": med["instrumented"] / med["plain"],
        "naive_speedup": med["naive"] / med["ours"],
        "peak_mem_ratio": peak["instrumented"] / peak["plain"],
        "naive_peak_mem_ratio": peak["naive"] / peak["ours"],
    }
