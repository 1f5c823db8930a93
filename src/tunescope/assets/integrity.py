"""Cheap and full integrity checks of extracted asset files.

`sha256_file` reads the whole file (what `tunescope assets fetch` does). `fingerprint` reads at most 2 MiB
(the first and the last MiB) whatever the file's size, so every load can afford it. `safetensors_problem`
checks that a safetensors header is well formed and accounts for exactly the bytes of the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

ENDS_BYTES = 1 << 20  # the fingerprint hashes this many bytes from each end of a file
MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors format refuses headers larger than 100 MB

# Bytes per element of the safetensors dtypes; sub-byte types are left out (their sizes are not checked).
SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
                        "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of the whole file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: Path, span: int = ENDS_BYTES) -> str:
    """sha256 of the file's size, its first `span` bytes and its last `span` bytes (all of it when small).

    Cheap enough for every load; it catches a cut file and any change within `span` of either end (where
    headers, zip central directories and the last written blocks live), not a change in the middle.
    """
    size = path.stat().st_size
    h = hashlib.sha256(f"{size}:".encode())
    with open(path, "rb") as f:
        if size <= 2 * span:
            h.update(f.read())
        else:
            h.update(f.read(span))
            f.seek(size - span)
            h.update(f.read(span))
    return h.hexdigest()


def _tensor_problem(name: str, entry: object, data_size: int) -> str | None:
    """Why one tensor entry of a safetensors header is inconsistent, or None."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        return f"tensor {name!r} lacks dtype / shape / data_offsets"
    offsets, shape = entry["data_offsets"], entry["shape"]
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        return f"tensor {name!r} has data offsets {offsets!r} outside the {data_size} data bytes"
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return f"tensor {name!r} has a bad shape {shape!r}"
    itemsize = SAFETENSORS_ITEMSIZE.get(entry["dtype"])
    if itemsize is not None and offsets[1] - offsets[0] != math.prod(shape) * itemsize:
        return f"tensor {name!r} ({entry['dtype']} {shape}) spans {offsets[1] - offsets[0]} bytes"
    return None


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a well-formed safetensors file (header, offsets, sizes), or None. Reads the header only.

    The tensors must tile the data area exactly: the same rule the safetensors loader enforces, so a file
    that passes here is not refused there for its layout.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return "is too short for a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > min(size - 8, MAX_SAFETENSORS_HEADER):
            return f"has a safetensors header length {length} larger than the file allows"
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "has a safetensors header that is not valid JSON"
    if not isinstance(header, dict):
        return "has a safetensors header that is not a JSON object"
    data_size = size - 8 - length
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        problem = _tensor_problem(name, entry, data_size)
        if problem:
            return f"has a broken safetensors header: {problem}"
        spans.append(tuple(entry["data_offsets"]))
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            return f"has a broken safetensors header: the tensors leave a gap or overlap at byte {end}"
        end = stop
    if end != data_size:
        return f"has a broken safetensors header: its tensors cover {end} of the {data_size} data bytes"
    return None
