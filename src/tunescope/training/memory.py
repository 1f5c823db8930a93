"""What a training run kept in memory (results.json `memory`), counted alike for every strategy.

    optimizer_state_bytes  every tensor in the optimizer's per-parameter state (AdamW: exp_avg, exp_avg_sq, step)
    training_state_bytes   optimizer state + the tensors the strategy adds to the pre-trained weights (LoRA's A and
                           B; SIFT's packed indices and base copy), as strategies/sift/accounting.py counts them
    peak_rss_bytes         the process's peak resident set size during training: on Linux the high-water mark
                           (VmHWM) is reset to the current RSS just before training (`reset_peak_rss`, writing 5 to
                           /proc/self/clear_refs), so evaluations and diagnoses before training do not count; the
                           loaded model and data do. Elsewhere (or when the reset is refused) the whole process's
                           peak (getrusage ru_maxrss); `peak_rss_scope` says which
Gradients and activations are not in the first two (freed by every step); they are in the peak RSS.
"""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

from torch import nn

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark to its current RSS (Linux >= 4.0); False where that is refused."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS of this process in bytes: VmHWM where /proc has it (honours `reset_peak_rss`), else ru_maxrss
    (KiB on Linux, bytes on macOS)."""
    try:
        found = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
        if found:
            return int(found.group(1)) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _strategy_tensors(model: nn.Module) -> list:
    from peft import PeftModel

    from tunescope.strategies.sift.accounting import adapter_tensors
    from tunescope.strategies.sift.strategy import ENGINE_ATTR

    kept = adapter_tensors(model) if isinstance(model, PeftModel) else []
    engine = getattr(model, ENGINE_ATTR, None)
    if engine is not None:
        kept += engine.bookkeeping_tensors()
    return kept


def training_memory(optimizer, model: nn.Module, *, reset_before_training: bool) -> dict:
    """results["memory"] after training (module docstring); `reset_before_training`: what reset_peak_rss returned."""
    from tunescope.strategies.sift.accounting import optimizer_tensors, state_bytes, tensor_bytes

    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the optimizer
    return {"optimizer_state_bytes": tensor_bytes(optimizer_tensors(inner)) if inner is not None else 0,
            "training_state_bytes": state_bytes(inner, _strategy_tensors(model)),
            "peak_rss_bytes": peak_rss_bytes(),
            "peak_rss_scope": "training" if reset_before_training else "process"}
