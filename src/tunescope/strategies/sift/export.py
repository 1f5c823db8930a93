"""Export a SIFT run as a peft SHiRA adapter: a folder that plain `PeftModel.from_pretrained(base, folder)` loads.

peft's SHiRA (sparse high-rank adapter) keeps, for each adapted nn.Linear of weight shape [out, in], a fixed set of
entries (`shira_indices`: int32 [2, N], row and column) and their values (`shira_weight`: fp32 [N]); its forward
adds them to the frozen base weight, W + scatter(values), in fp32. That is SIFT's W[idx] = base + delta with the same
addition, so the adapter reproduces the trained weights bit for bit. Two differences are bridged here:

- SHiRA has one rank r for all modules and fixes N = r * (in + out) per module (LoRA's parameter count), while SIFT
  keeps k = floor(rate * in * out) + 1 entries per tensor. The export takes the smallest r with r * (in + out) >= k
  for every target and pads each module with entries of value 0 at positions SIFT did not select. W + 0 = W, so the
  logits do not change; each padding entry costs BYTES_PER_ENTRY bytes on disk (tunescope_export.json says how many).
- The densely trained head goes into `modules_to_save` (saved whole, as peft does for any classifier adapter).

The config says `mask_type="random"`, the one mask type peft declares: the mask it would draw is only a placeholder
that loading overwrites with the saved indices. SHiRA wraps nn.Linear only, so targets of another layer type (GPT-2's
Conv1D) are refused with the reason, as are causal-LM (sft) deltas for now.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tunescope.config import load_yaml
from tunescope.errors import UserError
from tunescope.io import atomic_write_text
from tunescope.strategies.sift.state import SiftDelta, is_sift_folder, load_delta

log = logging.getLogger(__name__)

PEFT_FOLDER = "final-peft"  # beside checkpoints/final: where a SIFT run's SHiRA adapter goes
EXPORT_INFO = "tunescope_export.json"  # what the export wrote and what the padding cost
# A SHiRA entry on disk: int32 row + int32 column index, fp32 value (SIFT's own format: int64 index + fp32 value).
BYTES_PER_ENTRY = 12
# The run-directory layout (experiments/rundir.py's RunDir names these; strategies may not import experiments).
RUN_CONFIG, RUN_RESULTS, FINAL = "config.yaml", "results.json", Path("checkpoints") / "final"


@dataclass
class ShiraPlan:
    """What goes into the adapter: rank r and, per target module, its sorted flat indices and values (padded)."""

    r: int
    entries: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module name -> (int64 [N], fp32 [N])
    selected: int  # SIFT's entries, before padding

    @property
    def stored(self) -> int:
        return sum(idx.numel() for idx, _ in self.entries.values())

    @property
    def padding(self) -> int:
        return self.stored - self.selected


def shira_rank(shapes: dict[str, tuple[int, int]], counts: dict[str, int]) -> int:
    """The smallest r with r * (out + in) >= k for every module; UserError when some module cannot hold that many
    entries (r * (out + in) > out * in: SIFT's rate is too high for SHiRA's fixed per-module count)."""
    r = max(math.ceil(counts[name] / sum(shape)) for name, shape in shapes.items())
    for name, (rows, cols) in shapes.items():
        if r * (rows + cols) > rows * cols:
            raise UserError(f"cannot export to peft SHiRA: its one rank r={r} (needed for the largest SIFT target) "
                            f"asks {r * (rows + cols):,} entries of {name} ({rows}x{cols}, {rows * cols:,} entries); "
                            "a SIFT run with a lower sift_rate fits")
    return r


def pad_entries(indices: torch.Tensor, values: torch.Tensor, numel: int, count: int) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """(flat indices, values) with `count` entries, sorted by index: SIFT's k entries plus count - k entries of
    value 0 at the lowest positions SIFT did not select (W + 0 = W: padding changes no weight)."""
    chosen = torch.zeros(numel, dtype=torch.bool)
    chosen[indices.cpu()] = True
    pad = (~chosen).nonzero().view(-1)[: count - indices.numel()]
    flat = torch.cat([indices.cpu().long(), pad])
    vals = torch.cat([values.detach().cpu().float(), torch.zeros(pad.numel())])
    order = flat.argsort()
    return flat[order], vals[order]


def plan_shira(delta: SiftDelta) -> ShiraPlan:
    """The SHiRA layout of a SIFT delta: rank r and every target's entries padded to r * (out + in)."""
    shapes: dict[str, tuple[int, int]] = {}
    for name in delta.sparse:
        shape = delta.config["targets"][name]["shape"]
        if len(shape) != 2 or not name.endswith(".weight"):
            raise UserError(f"cannot export to peft SHiRA: target {name} (shape {shape}) is not a 2-D module weight")
        shapes[name] = (shape[0], shape[1])
    r = shira_rank(shapes, {name: idx.numel() for name, (idx, _) in delta.sparse.items()})
    entries = {name.removesuffix(".weight"): pad_entries(idx, val, shapes[name][0] * shapes[name][1],
                                                         r * sum(shapes[name]))
               for name, (idx, val) in delta.sparse.items()}
    return ShiraPlan(r=r, entries=entries, selected=sum(idx.numel() for idx, _ in delta.sparse.values()))


def _check_linear(model: nn.Module, plan: ShiraPlan) -> None:
    """SHiRA wraps nn.Linear only (it computes F.linear with the weight as [out, in])."""
    for name in plan.entries:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            raise UserError(f"cannot export to peft SHiRA: SIFT target {name} is a {type(module).__name__}, and peft's "
                            "SHiRA adapts nn.Linear layers only (GPT-2-style models use Conv1D); load this run in "
                            "tunescope (load_classifier(checkpoints/final)) instead")


def _mask_fn(model: nn.Module, plan: ShiraPlan):
    """peft's mask-function hook (base_layer, r, **kw) -> 0/1 mask in the weight's shape, dtype and device: the
    plan's entries of that layer, so peft derives exactly these indices (row-major, i.e. sorted flat order)."""
    names = {id(module): name for name, module in model.named_modules() if name in plan.entries}

    def mask_fn(base_layer: nn.Module, r: int, **_) -> torch.Tensor:
        weight = base_layer.weight
        mask = torch.zeros(weight.numel(), dtype=weight.dtype, device=weight.device)
        mask[plan.entries[names[id(base_layer)]][0].to(weight.device)] = 1
        return mask.view(weight.shape)

    return mask_fn


def _dense_modules(model: nn.Module, delta: SiftDelta) -> list[str]:
    """The modules that carry the dense tensors, for modules_to_save: the whole head module for the head's tensors
    (peft cannot wrap both a head and a layer inside it, e.g. RoBERTa's classifier.dense / classifier.out_proj)."""
    from tunescope.models.layers import model_layout

    head = model_layout(model).head_name
    return sorted({head if head and name.startswith(head + ".") else name.rsplit(".", 1)[0] for name in delta.dense})


def build_shira_model(model: nn.Module, delta: SiftDelta, plan: ShiraPlan, base_id: str, task_type: str):
    """Wrap the base `model` in a SHiRA PeftModel holding the delta: head tensors copied in (and saved through
    modules_to_save), each target's entries as shira_indices / shira_weight. `model` is changed in place."""
    from peft import ShiraConfig, get_peft_model

    _check_linear(model, plan)
    SiftDelta(config=delta.config, sparse={}, dense=delta.dense).merge(model)  # the trained head, same checks
    config = ShiraConfig(r=plan.r, mask_type="random", target_modules=sorted(plan.entries),
                         modules_to_save=_dense_modules(model, delta) or None, task_type=task_type)
    config.mask_fn = _mask_fn(model, plan)
    model.name_or_path = base_id  # get_peft_model records it as base_model_name_or_path
    peft_model = get_peft_model(model, config)
    saved = peft_model.peft_config["default"]  # peft appends its own head names (classifier, score) for SEQ_CLS
    saved.modules_to_save = list(dict.fromkeys(saved.modules_to_save or [])) or None
    with torch.no_grad():
        for name, (flat, values) in plan.entries.items():
            layer = peft_model.base_model.model.get_submodule(name)
            rows, cols = layer.shira_indices["default"].long()
            if not torch.equal((rows * layer.in_features + cols).cpu(), flat):
                raise RuntimeError(f"peft ordered the SHiRA indices of {name} differently from the export")
            layer.shira_weight["default"].copy_(values)
    return peft_model


# ---- finding what to export ---------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _run_config(run: Path | None) -> dict:
    if run is None or not (run / RUN_CONFIG).is_file():
        return {}
    return load_yaml(run / RUN_CONFIG) or {}


def locate_final(source: str | Path) -> tuple[Path, Path | None]:
    """(the SIFT delta folder, its run directory or None) for a run directory or a checkpoints/final folder;
    UserError (one line) for anything else: no such folder, not a SIFT run, no final checkpoint."""
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UserError(f"bad value {str(source)!r} for RUN: no such folder; expected a tunescope run directory "
                        "(or its checkpoints/final)")
    if is_sift_folder(path):
        run = path.parent.parent if path.parent.name == FINAL.parent.name else None
        return path, run if run is not None and (run / RUN_CONFIG).is_file() else None
    if not (path / FINAL).is_dir() and is_sift_folder(path / "sift" / FINAL):  # compare: one sub-run per strategy
        raise UserError(f"{str(source)!r} holds several runs; export its SIFT sub-run: {str(path / 'sift')!r}")
    strategy = _run_config(path).get("strategy")
    if not (path / RUN_CONFIG).is_file() and not (path / FINAL).is_dir():
        raise UserError(f"bad value {str(source)!r} for RUN: not a tunescope run directory (no {RUN_CONFIG}) nor a "
                        "SIFT checkpoint folder (sift_config.json + sift_delta.safetensors)")
    if strategy is not None and strategy != "sift":
        hint = " (its checkpoints/final already is a PEFT adapter)" if "lora" in str(strategy) else ""
        raise UserError(f"{str(source)!r} is not a SIFT run: its strategy is {strategy!r}{hint}; --format peft "
                        "exports the sparse delta of a `--strategy sift` run")
    final = path / FINAL
    if not final.is_dir():
        raise UserError(f"{str(source)!r} has no final checkpoint ({FINAL}): the run has not finished; resume it "
                        f"(tunescope finetune --resume --out {source}) and export it then")
    if not is_sift_folder(final):
        raise UserError(f"{str(source)!r} is not a SIFT run: {FINAL} holds no SIFT delta (sift_config.json + "
                        "sift_delta.safetensors)")
    return final, path


def _label_names(delta: SiftDelta, run: Path | None) -> list[str]:
    names = delta.config.get("label_names") or (_read_json(run / RUN_RESULTS).get("label_names") if run else None)
    if not names:
        raise UserError(f"cannot export: the SIFT checkpoint records no label names (sift_config.json) and no "
                        f"{RUN_RESULTS} beside it does; export the run directory, not a copied checkpoints/final")
    return [str(n) for n in names]


def _task_type(delta: SiftDelta, run: Path | None) -> str:
    recorded = delta.config.get("task_type")
    command = _read_json(run / RUN_RESULTS).get("command") if run else None
    task_type = recorded or ("CAUSAL_LM" if command == "sft" else "SEQ_CLS")
    if task_type != "SEQ_CLS":
        raise UserError(f"cannot export to peft SHiRA: this SIFT delta is of a {task_type} model; --format peft "
                        "exports classification runs (tunescope finetune) for now")
    return task_type


# ---- writing the folder -------------------------------------------------------------------------------------------
def _check_out(out: Path) -> None:
    """An export may replace an earlier export, never other files."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_INFO).is_file())):
        raise UserError(f"bad value {str(out)!r} for --out: it exists and is not an earlier export (no {EXPORT_INFO}); "
                        "pass a new folder")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _clear_leftovers(out: Path) -> None:
    """Remove the staging / old folders an export killed midway left beside `out` (their writer is dead)."""
    for leftover in out.parent.glob(f".{out.name}.*-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if leftover.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _publish(staged: Path, out: Path) -> None:
    """Put the complete folder `staged` in place of `out` (an earlier export is removed only after the rename)."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(staged, out)
    shutil.rmtree(old, ignore_errors=True)


def load_snippet(folder: str, base_id: str, label_names: list[str]) -> str:
    """The plain transformers + peft code that loads the exported adapter (README.md and the CLI print it)."""
    id2label = {i: n for i, n in enumerate(label_names)}
    return (f"from peft import PeftModel\n"
            f"from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
            f"tok = AutoTokenizer.from_pretrained({folder!r})\n"
            f"base = AutoModelForSequenceClassification.from_pretrained({base_id!r}, num_labels={len(label_names)}, "
            f"id2label={id2label!r}, pad_token_id=tok.pad_token_id)\n"
            f"model = PeftModel.from_pretrained(base, {folder!r}).eval()\n")


def _model_card(info: dict, snippet: str) -> str:
    return (f"---\nbase_model: {info['base_model_name_or_path']}\nlibrary_name: peft\ntags:\n- shira\n- sift\n"
            f"- tunescope\n---\n\n# SIFT fine-tune exported as a SHiRA adapter\n\n"
            f"Sparse increment fine-tuning (tunescope, `--strategy sift`) of `{info['base_model_name_or_path']}`, "
            f"labels {info['label_names']}. {info['selected_entries']:,} trained entries in "
            f"{info['target_modules']} weight matrices plus the classification head; SHiRA rank r={info['r']} "
            f"stores {info['stored_entries']:,} entries, {info['padding_entries']:,} of them zero padding "
            f"({info['padding_bytes']:,} bytes; the outputs are unchanged).\n\n```python\n{snippet}```\n\n"
            "pad_token_id matters for decoder bases (classification reads the last non-pad token). SHiRA rebuilds "
            "the weight in every forward; `model.merge_and_unload()` gives a plain transformers model.\n")


def export_peft_shira(source: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write a peft SHiRA adapter folder for a SIFT run (a run directory or its checkpoints/final); returns it.

    The base model is the one the delta records (the run's --model), loaded through tunescope.models.load; the
    adapter names it by a public id (a named asset's hub origin, a folder's absolute path). Default out_dir:
    checkpoints/final-peft beside the delta. An existing export there is replaced; any other non-empty folder is
    refused. The folder holds adapter_config.json + adapter_model.safetensors (peft's save_pretrained), the
    tokenizer, a README.md with the loading code, and tunescope_export.json (rank, entries, padding cost).
    """
    from tunescope.models.load import load_classifier, public_model_id, quiet_loading

    final, run = locate_final(source)
    out = Path(out_dir).expanduser() if out_dir is not None else final.parent / PEFT_FOLDER
    _check_out(out)
    delta = load_delta(final)
    base = delta.config.get("base_model_name_or_path") or _run_config(run).get("model")
    if not base:
        raise UserError(f"cannot export {str(final)!r}: its sift_config.json names no base model")
    task_type, labels = _task_type(delta, run), _label_names(delta, run)
    plan = plan_shira(delta)
    model, tokenizer = load_classifier(base, len(labels), label_names=labels)
    base_id = public_model_id(base)
    staged = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    _clear_leftovers(out)
    shutil.rmtree(staged, ignore_errors=True)
    try:
        with quiet_loading():
            peft_model = build_shira_model(model, delta, plan, base_id, task_type)
            # no embedding layers in a SHiRA export (targets are nn.Linear); "auto" would read the base's config
            peft_model.save_pretrained(str(staged), safe_serialization=True, save_embedding_layers=False)
            tokenizer.save_pretrained(str(staged))
        info = {"format": "peft-shira", "source": str(final.resolve()), "base_model": base,
                "base_model_name_or_path": base_id, "task_type": task_type, "label_names": labels, "r": plan.r,
                "target_modules": len(plan.entries), "selected_entries": plan.selected,
                "stored_entries": plan.stored, "padding_entries": plan.padding,
                "padding_bytes": plan.padding * BYTES_PER_ENTRY, "bytes_per_entry": BYTES_PER_ENTRY}
        atomic_write_text(staged / EXPORT_INFO, json.dumps(info, indent=2))
        atomic_write_text(staged / "README.md", _model_card(info, load_snippet(str(out), base_id, labels)))
        out.parent.mkdir(parents=True, exist_ok=True)
        _publish(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return out


def export_info(folder: str | Path) -> dict:
    """The facts an export recorded (tunescope_export.json)."""
    return _read_json(Path(folder) / EXPORT_INFO)


def export_after_training(final: Path) -> Path | None:
    """The end-of-run export (SIFT's save of checkpoints/final): never fails the finished run. A delta SHiRA cannot
    hold (Conv1D targets, a causal LM) is logged with the reason at INFO (a known limit, not a fault); anything
    else at WARNING. Returns the folder or None."""
    try:
        return export_peft_shira(final)
    except UserError as e:
        log.info("no peft export of %s: %s", final, e)
    except Exception as e:  # noqa: BLE001 - the run's own results are already saved; the export is a copy of them
        log.warning("no peft export of %s (unexpected %s: %s)", final, type(e).__name__, e)
    return None
