"""Saving and resuming a SIFT delta; the file format itself (and merge / unmerge) is models/sparse_delta.py.

`save_delta` fills the format from a trained SiftEngine: per target tensor its k flat indices and the fp32
increments delta (W[idx] = base + delta), every densely trained tensor (the head) whole, and in sift_config.json
the SIFT settings, the selected-entry count, the model's PEFT task type and (classifiers) its label names, which
the peft export (export.py) needs. `restore_engine` is the way back for `--resume`.
The format's names are re-exported here under their SIFT names (SiftDelta, is_sift_folder, ...).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tunescope.assets import asset_names
from tunescope.errors import UserError
from tunescope.models.sparse_delta import (
    CONFIG_FILE,
    DELTA_FILE,
    FORMAT_VERSION,
    SparseDelta,
    base_model_of,
    load_delta,
    write_delta,
)
from tunescope.models.sparse_delta import is_delta_folder as is_sift_folder
from tunescope.strategies.sift.sparse import SiftEngine

SiftDelta = SparseDelta  # a loaded SIFT delta is a sparse delta; the old name stays importable

__all__ = ["CONFIG_FILE", "DELTA_FILE", "FORMAT_VERSION", "SiftDelta", "base_model_of", "is_sift_folder",
           "load_delta", "restore_engine", "save_delta"]


def recorded_base(name: str | None) -> str | None:
    """The base-model name to record: a named asset or hub id as given, a local folder as an absolute path (so the
    delta still finds its base when it is loaded or exported from another working directory)."""
    if name is None or name in asset_names("model"):
        return name
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def model_facts(model: nn.Module) -> dict:
    """{"task_type": PEFT's task type (SEQ_CLS, CAUSAL_LM, or None), "label_names": [class 0, 1, ...] or None}."""
    kind = type(model).__name__
    task_type = "SEQ_CLS" if kind.endswith("ForSequenceClassification") else \
        "CAUSAL_LM" if kind.endswith("ForCausalLM") else None
    id2label = getattr(getattr(model, "config", None), "id2label", None) if task_type == "SEQ_CLS" else None
    labels = [str(id2label[i]) for i in sorted(id2label)] if id2label else None
    return {"task_type": task_type, "label_names": labels}


def save_delta(engine: SiftEngine, folder: str | Path) -> Path:
    """Write the engine's masks, increments and dense tensors to `folder` (atomically)."""
    if not engine.selected:
        raise RuntimeError("cannot save a SIFT delta before its mask is selected")
    sparse = {name: (s.indices, s.increment()) for name, s in engine.slots.items()}
    targets = {name: {"shape": list(s.weight.shape), "k": s.k, "dtype": str(s.weight.dtype)}
               for name, s in engine.slots.items()}
    return write_delta(folder, sparse, dict(engine.dense), targets,
                       base_model=recorded_base(engine.config.extra.get("model")),
                       extra={"sift": engine.config.to_dict(), "selected_params": engine.selected_params,
                              **model_facts(engine.model)})


def restore_engine(engine: SiftEngine, delta: SparseDelta) -> None:
    """Resume: install the saved masks and increments into a freshly prepared engine (model = base)."""
    if set(delta.sparse) != set(engine.slots):
        raise UserError("SIFT checkpoint targets differ from this run's targets: "
                        f"{sorted(delta.sparse)[:3]}... vs {sorted(engine.slots)[:3]}...")
    engine.set_masks({n: idx for n, (idx, _) in delta.sparse.items()},
                     deltas={n: v for n, (_, v) in delta.sparse.items()})
    with torch.no_grad():
        for name, value in delta.dense.items():
            engine.dense[name].data.copy_(value)
