"""`tunescope bench jump`: throughput of the jump measurement vs a plain forward pass, side by side.

Default: minilm-l6 on 4 batches of 16 held-out news_text documents x 128 tokens. Reported (medians over
`repeats`, the variants interleaved inside every repeat so machine load hits them alike):
- throughput_ratio: tokens/s of `jump_profile` (trunk forward + per-block displacement hooks, the way
  `tunescope jump` measures) / tokens/s of the plain forward of the whole model (`model(**batch)`);
  goal >= 0.9;
- hook_overhead_ratio: tokens/s of the whole model's forward with the displacement hooks / without them
  (isolates the cost of the hooks, without the saving from skipping the head).
"""

from __future__ import annotations

import statistics
import time

import torch

from tunescope.bench import BENCHMARKS
from tunescope.diagnostics.jump import DisplacementCapture, jump_profile


def _load(options: dict):
    from tunescope.data.corpus import load_corpus
    from tunescope.experiments.jump import text_batches
    from tunescope.models.load import load_encoder_or_lm

    name = str(options.get("model", "minilm-l6"))
    batch_size, seq_len = int(options.get("batch_size", 16)), int(options.get("seq_len", 128))
    num_batches = int(options.get("batches", 4))
    model, tokenizer = load_encoder_or_lm(name)
    device = torch.device(str(options.get("device", "cuda" if torch.cuda.is_available() else "cpu")))
    model.to(device).eval()
    texts = load_corpus(str(options.get("data", "news_text"))).heldout[: batch_size * num_batches]
    batches = [{k: v.to(device) for k, v in b.items()} for b in text_batches(tokenizer, texts, seq_len, batch_size)]
    return name, model, batches, device


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@BENCHMARKS.register("jump")
def bench_jump(options: dict) -> dict:
    """Median times of plain forward, jump measurement and hooked full forward on the same batches."""
    repeats = int(options.get("repeats", 5))
    name, model, batches, device = _load(options)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    @torch.inference_mode()
    def plain():
        for b in batches:
            model(**b)

    def measured():
        jump_profile(model, batches)

    @torch.inference_mode()
    def hooked_full():
        with DisplacementCapture(model) as cap:
            for b in batches:
                cap.set_mask(b["attention_mask"])
                model(**b)
                cap.accumulate()

    for fn in (plain, measured, hooked_full):  # warm-up (allocator, kernels)
        fn()
    times: dict[str, list[float]] = {"plain": [], "jump": [], "hooked": []}
    for _ in range(repeats):
        times["plain"].append(_timed(plain, device))
        times["jump"].append(_timed(measured, device))
        times["hooked"].append(_timed(hooked_full, device))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "device": str(device),
        "tokens_per_pass": tokens,
        "plain_tokens_per_s": tokens / med["plain"],
        "jump_tokens_per_s": tokens / med["jump"],
        "throughput_ratio": med["plain"] / med["jump"],
        "hook_overhead_ratio": med["plain"] / med["hooked"],
        "repeats": repeats,
    }
