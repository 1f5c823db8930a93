"""Saving, loading, merging and unmerging a SIFT delta.

On disk (a folder): `sift_delta.safetensors` holds, per target tensor, `sparse/<name>/indices`
(int64 [k], flat) and `sparse/<name>/values` (fp32 [k], the increment delta), plus every densely
trained tensor (the head) as `dense/<name>`; `sift_config.json` holds the SIFT settings, the
shapes and dtypes. Nothing else of the model is written, so the file is ~ (12 bytes x k + head).

merge:   W[idx] = W[idx] + delta (computed in fp32, cast to W's dtype), dense tensors replaced.
         Training keeps W[idx] = base + delta with the same arithmetic, so merging onto a fresh
         copy of the base model reproduces the trained weights bit for bit.
unmerge: puts back the exact values that merge overwrote (kept in memory by merge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tunescope.errors import UserError
from tunescope.io import atomic_write, atomic_write_text
from tunescope.strategies.sift.sparse import SiftEngine

DELTA_FILE = "sift_delta.safetensors"
CONFIG_FILE = "sift_config.json"
FORMAT_VERSION = 1


@dataclass
class SiftDelta:
    """A loaded delta: sparse[name] = (indices int64 [k], values fp32 [k]); dense[name] = tensor."""

    config: dict
    sparse: dict[str, tuple[torch.Tensor, torch.Tensor]]
    dense: dict[str, torch.Tensor]
    _stash: dict[str, tuple[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def merged(self) -> bool:
        return bool(self._stash)

    def merge(self, model: nn.Module) -> nn.Module:
        """Apply the delta to `model` in place (W[idx] += delta; dense tensors replaced)."""
        if self._stash:
            raise RuntimeError("this SIFT delta is already merged; unmerge it first")
        params = dict(model.named_parameters())
        missing = [n for n in (*self.sparse, *self.dense) if n not in params]
        if missing:
            raise UserError(f"SIFT delta does not fit this model: no parameter named {missing[0]!r} "
                            f"(expected the base model the delta was trained on: {self.config.get('extra', {})})")
        with torch.no_grad():
            for name, (idx, values) in self.sparse.items():
                flat = params[name].data.view(-1)
                self._stash[name] = ("sparse", flat[idx].clone())
                flat[idx] = (flat[idx].float() + values.to(flat.device)).to(flat.dtype)
            for name, value in self.dense.items():
                p = params[name]
                if p.shape != value.shape:
                    raise UserError(f"SIFT delta does not fit this model: {name} has shape {tuple(p.shape)}, "
                                    f"the delta {tuple(value.shape)}")
                self._stash[name] = ("dense", p.data.clone())
                p.data.copy_(value)
        return model

    def unmerge(self, model: nn.Module) -> nn.Module:
        """Restore exactly the values `merge` overwrote."""
        if not self._stash:
            raise RuntimeError("this SIFT delta is not merged")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, (kind, old) in self._stash.items():
                if kind == "sparse":
                    params[name].data.view(-1)[self.sparse[name][0]] = old
                else:
                    params[name].data.copy_(old)
        self._stash = {}
        return model

    def num_values(self) -> int:
        return sum(v.numel() for _, v in self.sparse.values()) + sum(t.numel() for t in self.dense.values())


def save_delta(engine: SiftEngine, folder: str | Path) -> Path:
    """Write the engine's masks, increments and dense tensors to `folder` (atomically)."""
    if not engine.selected:
        raise RuntimeError("cannot save a SIFT delta before its mask is selected")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    targets = {}
    for name, s in engine.slots.items():
        tensors[f"sparse/{name}/indices"] = s.indices.detach().cpu().contiguous()
        tensors[f"sparse/{name}/values"] = s.delta.detach().float().cpu().contiguous()
        targets[name] = {"shape": list(s.weight.shape), "k": s.k, "dtype": str(s.weight.dtype)}
    for name, p in engine.dense.items():
        tensors[f"dense/{name}"] = p.detach().cpu().contiguous()
    atomic_write(folder / DELTA_FILE, lambda path: save_file(tensors, str(path), metadata={"format": "tunescope-sift"}))
    meta = {"format_version": FORMAT_VERSION, "base_model_name_or_path": engine.config.extra.get("model"),
            "sift": engine.config.to_dict(), "targets": targets,
            "dense": list(engine.dense), "selected_params": engine.selected_params}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(meta, indent=2))
    return folder


def is_sift_folder(folder: str | Path) -> bool:
    """True when `folder` holds a SIFT delta (then `base_model_of(folder)` names its base model)."""
    return (Path(folder) / DELTA_FILE).is_file() and (Path(folder) / CONFIG_FILE).is_file()


def base_model_of(folder: str | Path) -> str | None:
    """The base model (name or path) a saved delta was trained on, as recorded in sift_config.json."""
    return json.loads((Path(folder) / CONFIG_FILE).read_text()).get("base_model_name_or_path")


def load_delta(folder: str | Path) -> SiftDelta:
    """Read a delta written by save_delta."""
    folder = Path(folder)
    if not is_sift_folder(folder):
        raise UserError(f"{str(folder)!r} is not a SIFT checkpoint: expected {DELTA_FILE} and {CONFIG_FILE} in it")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    raw = load_file(str(folder / DELTA_FILE))
    sparse = {name: (raw[f"sparse/{name}/indices"], raw[f"sparse/{name}/values"]) for name in meta["targets"]}
    dense = {name: raw[f"dense/{name}"] for name in meta["dense"]}
    return SiftDelta(config=meta, sparse=sparse, dense=dense)


def restore_engine(engine: SiftEngine, delta: SiftDelta) -> None:
    """Resume: install the saved masks and increments into a freshly prepared engine (model = base)."""
    if set(delta.sparse) != set(engine.slots):
        raise UserError("SIFT checkpoint targets differ from this run's targets: "
                        f"{sorted(delta.sparse)[:3]}... vs {sorted(engine.slots)[:3]}...")
    engine.set_masks({n: idx for n, (idx, _) in delta.sparse.items()},
                     deltas={n: v for n, (_, v) in delta.sparse.items()})
    with torch.no_grad():
        for name, value in delta.dense.items():
            engine.dense[name].data.copy_(value)
