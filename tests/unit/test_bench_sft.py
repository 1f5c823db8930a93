"""`tunescope bench sft` on a tiny random Llama: the keys, positive finite ratios, SIFT's rate at LoRA's budget."""

from __future__ import annotations

import math
import queue

import pytest
import torch

from tests.unit._sft_helpers import messages_rows, save_tiny_llama, write_jsonl
from tunescope.bench import load_benchmark
from tunescope.errors import UserError

pytestmark = pytest.mark.usefixtures("one_thread")

RATIOS = ("step_ratio_vs_trl", "diagnostics_overhead_ratio", "sift_state_ratio_vs_lora", "sift_step_ratio_vs_lora",
          "step_ratio_vs_trl_cpu", "diagnostics_overhead_ratio_cpu", "sift_step_ratio_vs_lora_cpu")


@pytest.fixture(scope="module")
def tiny_sft(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bench-sft")
    return {"model": str(save_tiny_llama(folder / "model")),
            "data": str(write_jsonl(folder / "data.jsonl", messages_rows(40))), "limit": 30}


def test_bench_sft_keys_and_ratios(tiny_sft):
    r = load_benchmark("sft")({**tiny_sft, "rounds": 1, "every": 5, "memory": "false"})
    for key in (*RATIOS, "trl_step_s", "tunescope_step_s", "diagnostics_idle_step_s", "diagnostics_fire_step_s",
                "sift_step_s", "lora_state_bytes", "sift_state_bytes"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert r["step_ratio_vs_trl"] == pytest.approx(r["tunescope_step_s"] / r["trl_step_s"])
    assert r["sift_step_ratio_vs_lora_cpu"] == pytest.approx(r["sift_step_cpu_s"] / r["tunescope_step_cpu_s"])
    assert r["sift_state_ratio_vs_lora"] == pytest.approx(r["sift_state_bytes"] / r["lora_state_bytes"])
    expected = (4 * r["diagnostics_idle_step_s"] + r["diagnostics_fire_step_s"]) / (5 * r["diagnostics_idle_step_s"])
    assert r["diagnostics_overhead_ratio"] == pytest.approx(expected)
    # equal trainable parameters: LoRA r=8 on q, k, v, o of 2 blocks (q, o 32 x 32; k, v 16 x 32), SIFT's k at most
    # that, short of it by less than one entry per target tensor
    assert r["lora_trainable"] == 2 * 8 * ((32 + 32) + 2 * (32 + 16) + (32 + 32))
    assert r["lora_trainable"] - 8 < r["sift_trainable"] <= r["lora_trainable"]
    assert r["batch"].startswith("4x")


def test_peak_rss_child_measures_in_process(tiny_sft):
    from tunescope.bench.sft import DEFAULTS, _rss_child

    out: queue.Queue = queue.Queue()
    _rss_child("sift", {**DEFAULTS, **tiny_sft, "steps": 1}, torch.get_num_threads(), out)
    name, peak, extra = out.get_nowait()
    assert name == "sift" and peak > extra >= 0


def test_sift_rate_is_the_largest_within_the_budget():
    from tunescope.bench.sft import sift_rate_for
    from tunescope.strategies.sift.config import num_selected

    targets = {"a": torch.zeros(576, 576), "b": torch.zeros(192, 576)}
    budget = 8 * (1152 + 768)  # LoRA r=8 on one 576 x 576 and one 192 x 576 weight
    rate = sift_rate_for(targets, budget)
    k = sum(num_selected(t.numel(), rate) for t in targets.values())
    above = sum(num_selected(t.numel(), rate * (1 + 1e-12)) for t in targets.values())
    assert k <= budget < above  # the largest rate: any larger one selects more than the budget
    assert budget - k < len(targets)  # short by less than the "+ 1" of each tensor


@pytest.mark.parametrize("options", [{"batch_size": 1}, {"rounds": 0}, {"limit": 2}])
def test_bad_options_are_user_errors(options):
    with pytest.raises(UserError, match="bench sft"):
        load_benchmark("sft")(options)
