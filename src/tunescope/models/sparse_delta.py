"""The sparse-delta checkpoint format (written by SIFT runs): a few entries of some weights, whole other tensors.

It lives with the models because loading a checkpoint needs it (`models.load` merges a delta folder onto its
base model); the strategy that trains the delta (strategies/sift/state.py) only fills it.

On disk (a folder):
    sift_delta.safetensors   sparse/<name>/indices  int64 [k], flat positions in parameter <name>
                             sparse/<name>/values   fp32 [k], the increment delta at those positions
                             dense/<name>           a whole replacement tensor (e.g. a densely trained head)
    sift_config.json         format_version, base_model_name_or_path, targets {name: {shape, k, dtype}},
                             dense [names], plus whatever the writer records (SIFT: its settings, the model's
                             PEFT task_type and its label_names)
Nothing else of the model is written, so the file is ~ (12 bytes x k + the dense tensors).
base_model_name_or_path is tunescope's own name for the base (a named asset, a hub id, an absolute folder), which
models.load resolves offline; tools outside tunescope read the peft SHiRA export instead
(strategies/sift/export.py), which names the base by a public id.

merge:   W[idx] = W[idx] + delta (computed in fp32, cast to W's dtype); dense tensors replaced.
         Training keeps W[idx] = base + delta with the same arithmetic, so merging onto a fresh copy of
         the base model reproduces the trained weights bit for bit.
unmerge: puts back the exact values that merge overwrote (merge keeps them in memory).
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

DELTA_FILE = "sift_delta.safetensors"
CONFIG_FILE = "sift_config.json"
FORMAT_VERSION = 1
SAFETENSORS_FORMAT = "tunescope-sift"  # the safetensors header's `format` entry


@dataclass
class SparseDelta:
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
                # fp32 sum then one cast: the same rounding as training's W[idx] = (base + delta).to(dtype)
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
        """k summed over the sparse tensors + the elements of the dense ones."""
        return sum(v.numel() for _, v in self.sparse.values()) + sum(t.numel() for t in self.dense.values())

    def masks(self) -> dict[str, torch.Tensor]:
        """Bool masks in each sparse parameter's shape, True at the entries the delta changes (dense ones excluded)."""
        out = {}
        for name, (indices, _) in self.sparse.items():
            shape = self.config["targets"][name]["shape"]
            mask = torch.zeros(int(torch.tensor(shape).prod()), dtype=torch.bool)
            mask[indices] = True
            out[name] = mask.view(shape)
        return out


def write_delta(folder: str | Path, sparse: dict[str, tuple[torch.Tensor, torch.Tensor]],
                dense: dict[str, torch.Tensor], targets: dict[str, dict], *, base_model: str | None,
                extra: dict | None = None) -> Path:
    """Write a delta folder (both files atomically); returns the folder.

    sparse[name] = (flat indices int64 [k], increments [k], stored as fp32); dense[name] = whole tensor;
    targets[name] = {"shape": [...], "k": k, "dtype": "torch.float32"}: the parameter each sparse entry
    belongs to; `extra` = the writer's own keys in sift_config.json (SIFT: its settings).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, (indices, values) in sparse.items():
        tensors[f"sparse/{name}/indices"] = indices.detach().cpu().contiguous()
        tensors[f"sparse/{name}/values"] = values.detach().float().cpu().contiguous()
    for name, tensor in dense.items():
        tensors[f"dense/{name}"] = tensor.detach().cpu().contiguous()
    atomic_write(folder / DELTA_FILE,
                 lambda path: save_file(tensors, str(path), metadata={"format": SAFETENSORS_FORMAT}))
    meta = {"format_version": FORMAT_VERSION, "base_model_name_or_path": base_model, "targets": targets,
            "dense": list(dense), **(extra or {})}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(meta, indent=2))
    return folder


def is_delta_folder(folder: str | Path) -> bool:
    """True when `folder` holds a sparse delta (then `base_model_of(folder)` names its base model)."""
    return (Path(folder) / DELTA_FILE).is_file() and (Path(folder) / CONFIG_FILE).is_file()


def base_model_of(folder: str | Path) -> str | None:
    """The base model (name or path) a saved delta was trained on, as recorded in sift_config.json."""
    return json.loads((Path(folder) / CONFIG_FILE).read_text()).get("base_model_name_or_path")


def load_delta(folder: str | Path) -> SparseDelta:
    """Read a delta folder written by `write_delta`."""
    folder = Path(folder)
    if not is_delta_folder(folder):
        raise UserError(f"{str(folder)!r} is not a SIFT checkpoint: expected {DELTA_FILE} and {CONFIG_FILE} in it")
    meta = json.loads((folder / CONFIG_FILE).read_text())
    raw = load_file(str(folder / DELTA_FILE))
    sparse = {name: (raw[f"sparse/{name}/indices"], raw[f"sparse/{name}/values"]) for name in meta["targets"]}
    dense = {name: raw[f"dense/{name}"] for name in meta["dense"]}
    return SparseDelta(config=meta, sparse=sparse, dense=dense)
