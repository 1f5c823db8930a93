"""Test helpers for the asset cache: a toy asset served from a local wheel, a read-only cache, file damage.

The toy asset needs neither the network nor the real cache: its wheel is built in a temporary folder and it is
registered in ASSETS for one test only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tunescope.assets import ASSETS, Asset

TOY_ASSET = "toy-asset"
BIG_FILE = "big.bin"  # 3 MiB: larger than the two 1 MiB ends the load-time fingerprint reads
WEIGHTS = "model.safetensors"


def build_toy_wheel(folder: Path) -> tuple[Path, str]:
    """A wheel holding toy/model.safetensors (tiny tensors) and toy/big.bin (3 MiB); returns (path, sha256)."""
    staging = folder / "staging"
    staging.mkdir(parents=True)
    save_file({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(4, dtype=torch.float16)},
              str(staging / WEIGHTS))
    wheel = folder / "toy_asset-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(staging / WEIGHTS, f"toy/{WEIGHTS}")
        zf.writestr(f"toy/{BIG_FILE}", bytes(range(256)) * (3 * 4096))
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.fixture
def toy_home(tmp_path, monkeypatch) -> Path:
    """A fresh $TUNESCOPE_HOME whose wheels/ holds the toy asset's wheel; TOY_ASSET is registered for the test."""
    home = tmp_path / "home"
    (home / "wheels").mkdir(parents=True)
    wheel, digest = build_toy_wheel(tmp_path / "build")
    shutil.copy(wheel, home / "wheels" / wheel.name)
    asset = Asset(TOY_ASSET, "model", "toy-asset", "0.0.1", digest, (f"toy/{WEIGHTS}", f"toy/{BIG_FILE}"), "toy/",
                  "a toy asset for the cache tests", "MIT")
    monkeypatch.setitem(ASSETS._items, TOY_ASSET, asset)
    monkeypatch.setenv("TUNESCOPE_HOME", str(home))
    return home


def overwrite(path: Path, offset: int, data: bytes) -> None:
    """Replace bytes at `offset` (negative: from the end) in place: same size, other content."""
    with open(path, "r+b") as f:
        f.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
        f.write(data)


def _folders(root: Path) -> list[Path]:
    return [root, *(p for p in root.rglob("*") if p.is_dir())]


def _writable(folder: Path) -> bool:
    """Can this process create a file in `folder`? (The real test: root ignores permission bits.)"""
    probe = folder / ".write-probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def _chattr(flag: str, folders: list[Path]) -> bool:
    try:
        return subprocess.run(["chattr", flag, *map(str, folders)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@contextmanager
def read_only(root: Path) -> Iterator[None]:
    """Make every folder under `root` read-only for this process, or skip the test when that is impossible.

    chmod is enough for a normal user; root ignores permission bits, so as root the folders are made
    immutable (chattr +i) instead. Both are undone on exit, so pytest can remove the folder.
    """
    folders = _folders(root)
    modes = {p: p.stat().st_mode for p in folders}
    for p in folders:
        p.chmod(0o555)
    immutable = False
    try:
        if any(map(_writable, folders)):
            immutable = _chattr("+i", folders)
            if not immutable or any(map(_writable, folders)):
                pytest.skip("cannot make a folder read-only here (root without chattr)")
        yield
    finally:
        if immutable:
            _chattr("-i", folders)
        for p, mode in modes.items():
            p.chmod(mode)
