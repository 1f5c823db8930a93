"""Cheap checks of a checkpoint folder's files, made before transformers / peft read any weights.

- `check_safetensors(path)`: the safetensors layout is an 8-byte little-endian header length N, N bytes of JSON
  (`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, offsets relative to the end
  of the header), then the tensor data. Reading the header alone (never the data) finds a truncated download, a
  half-written save or a file that is not safetensors at all, and says so in one line instead of a Rust traceback.
- `check_checkpoint_folder(folder, name)`: every *.safetensors file of the folder, the JSON files that name a base
  model (adapter_config.json, sift_config.json) and the shard index; and it refuses a folder whose only weights are
  pickle files (pytorch_model.bin, adapter_model.bin): unpickling can run arbitrary code, so tunescope never
  unpickles weights and says how to convert them once.
- `read_base_config(folder)`: the parsed adapter_config.json / sift_config.json of an adapter or sparse-delta folder.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from tunescope.errors import UserError

# safetensors refuses headers above 100 MB; anything larger is a corrupt length field.
MAX_HEADER_BYTES = 100_000_000
# Bytes per element of the safetensors dtypes (sub-byte float formats are left out: their size is not whole bytes).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "U16": 2, "I16": 2,
               "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8}
ADAPTER_CONFIG = "adapter_config.json"
DELTA_CONFIG = "sift_config.json"  # models/sparse_delta.py's CONFIG_FILE (that module imports torch; this one not)
PICKLE_MODEL_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
PICKLE_ADAPTER_FILE = "adapter_model.bin"
REFETCH = "save it again with save_pretrained(..., safe_serialization=True) or download it again"


def _corrupt(path: Path, what: str) -> UserError:
    return UserError(f"bad file {str(path)!r}: {what}; expected a complete safetensors file ({REFETCH})")


def _read_header(path: Path) -> tuple[dict, int]:
    """(parsed JSON header, number of data bytes after it); UserError when the header cannot be read."""
    size = path.stat().st_size
    if size < 8:
        raise _corrupt(path, f"truncated: {size} bytes, shorter than the 8-byte header length")
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
            raise _corrupt(path, f"its header length field says {length:,} bytes but the file has {size:,} bytes "
                                 "(truncated, or not a safetensors file)")
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _corrupt(path, f"its {length:,}-byte header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, f"its header is a JSON {type(header).__name__}, not an object")
    return header, size - 8 - length


def _tensor_span(path: Path, name: str, entry: Any) -> tuple[int, int]:
    """(begin, end) of one tensor's data; UserError when its header entry is malformed or inconsistent."""
    if not isinstance(entry, dict):
        raise _corrupt(path, f"tensor {name!r} has a malformed header entry {entry!r}")
    shape, offsets, dtype = entry.get("shape"), entry.get("data_offsets"), entry.get("dtype")
    ints = (lambda v: isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                                   for x in v))
    if not isinstance(dtype, str) or not ints(shape) or not ints(offsets) or len(offsets) != 2 \
            or offsets[0] > offsets[1]:
        raise _corrupt(path, f"tensor {name!r} has a malformed header entry (dtype {dtype!r}, shape {shape!r}, "
                             f"data_offsets {offsets!r})")
    begin, end = offsets
    itemsize = DTYPE_BYTES.get(dtype)
    if itemsize is not None and end - begin != math.prod(shape) * itemsize:
        raise _corrupt(path, f"tensor {name!r} ({dtype}, shape {shape}) needs {math.prod(shape) * itemsize:,} "
                             f"bytes but its data_offsets span {end - begin:,}")
    return begin, end


def check_safetensors(path: str | Path) -> None:
    """UserError naming `path` unless its header is complete and every tensor's data lies inside the file.

    Reads 8 bytes plus the JSON header, never the tensor data, so it costs microseconds even for large files.
    """
    path = Path(path)
    header, data_bytes = _read_header(path)
    needed = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        needed = max(needed, _tensor_span(path, name, entry)[1])
    if needed > data_bytes:
        raise _corrupt(path, f"truncated: its tensors need {needed:,} bytes of data but only {data_bytes:,} follow "
                             "the header")


def _read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; UserError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"bad file {str(path)!r}: not readable JSON ({e}); expected the JSON object written by "
                        "save_pretrained (save the checkpoint again)") from None
    if not isinstance(data, dict):
        raise UserError(f"bad file {str(path)!r}: holds a JSON {type(data).__name__}; expected a JSON object "
                        "(save the checkpoint again)")
    return data


def read_base_config(folder: str | Path) -> dict | None:
    """The adapter_config.json (PEFT) or sift_config.json (SIFT delta) of `folder`, checked to name its base model
    in `base_model_name_or_path`; None for a folder that is neither."""
    folder = Path(folder)
    for file in (ADAPTER_CONFIG, DELTA_CONFIG):
        path = folder / file
        if path.is_file():
            data = _read_json_object(path)
            base = data.get("base_model_name_or_path")
            if not isinstance(base, str) or not base.strip():
                raise UserError(f"bad file {str(path)!r}: base_model_name_or_path is {base!r}; expected the name or "
                                "path of the base model the adapter was trained on")
            return data
    return None


def _has_model_safetensors(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file() \
        or any(folder.glob("model-*.safetensors"))


def _pickle_only(folder: Path, name: str) -> UserError | None:
    """The refusal for a folder whose weights exist only as pickle files, else None."""
    if (folder / ADAPTER_CONFIG).is_file():  # a PEFT adapter: its own weights file is what counts
        if (folder / PICKLE_ADAPTER_FILE).is_file() and not (folder / "adapter_model.safetensors").is_file():
            return UserError(f"adapter folder {name!r} holds only a pickle checkpoint ({PICKLE_ADAPTER_FILE}), which "
                             "tunescope does not load because unpickling can run arbitrary code; convert it once in "
                             "a Python session you trust: PeftModel.from_pretrained(base_model, FOLDER)"
                             ".save_pretrained(FOLDER, safe_serialization=True) writes adapter_model.safetensors")
        return None
    if (folder / DELTA_CONFIG).is_file():  # a SIFT delta: always safetensors
        return None
    pickles = [f for f in PICKLE_MODEL_FILES if (folder / f).is_file()] or sorted(
        p.name for p in folder.glob("pytorch_model-*.bin"))
    if pickles and not _has_model_safetensors(folder):
        arch = _architecture_name(folder)
        return UserError(f"model folder {name!r} holds only a pickle checkpoint ({pickles[0]}), which tunescope does "
                         "not load because unpickling can run arbitrary code; convert it once in a Python session "
                         f"you trust: transformers.{arch}.from_pretrained(FOLDER).save_pretrained(FOLDER, "
                         "safe_serialization=True) writes model.safetensors")
    return None


def _architecture_name(folder: Path) -> str:
    """The model class config.json names (for the conversion hint), else the generic AutoModel."""
    try:
        archs = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        archs = []
    return archs[0] if archs and isinstance(archs[0], str) else "AutoModel"


def _check_shard_index(folder: Path) -> None:
    """Every shard model.safetensors.index.json names must be in the folder."""
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return
    weight_map = _read_json_object(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise UserError(f"bad file {str(index)!r}: no weight_map object; expected the index save_pretrained writes")
    missing = sorted({f for f in weight_map.values() if not (folder / str(f)).is_file()})
    if missing:
        raise UserError(f"bad file {str(index)!r}: it names shard {missing[0]!r}, which is not in the folder "
                        f"({len(missing)} missing); download or save the checkpoint again")


def check_checkpoint_folder(folder: str | Path, name: str | None = None) -> None:
    """UserError (naming the file) for a folder tunescope must not or cannot load; see the module docstring.

    `name` is how the user referred to the folder (the message quotes it).
    """
    folder = Path(folder)
    name = name or str(folder)
    refusal = _pickle_only(folder, name)
    if refusal is not None:
        raise refusal
    read_base_config(folder)
    if (folder / "config.json").is_file():
        _read_json_object(folder / "config.json")
    _check_shard_index(folder)
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)
