"""Asset cache integrity without the network: load-time fingerprints, safetensors headers, old markers,
read-only caches (a toy asset served from a wheel built in tmp_path)."""

from __future__ import annotations

import importlib
import json
import struct

import pytest

from tests.unit._asset_helpers import (  # noqa: F401
    BIG_FILE,
    TOY_ASSET,
    WEIGHTS,
    overwrite,
    read_only,
    toy_home,
)
from tunescope.assets import fetch, is_cached
from tunescope.assets.fetch import MARKER
from tunescope.assets.integrity import ENDS_BYTES, fingerprint, safetensors_problem
from tunescope.errors import UserError


def _marker(folder):
    return json.loads((folder / MARKER).read_text())


def _strip_fingerprints(folder, *, keep_sha256: bool = True) -> None:
    """Rewrite the marker as the previous versions wrote it (no file_ends; oldest: no file_sha256 either)."""
    info = _marker(folder)
    del info["file_ends"]
    if not keep_sha256:
        del info["file_sha256"]
    (folder / MARKER).write_text(json.dumps(info))


def test_extraction_records_size_sha256_and_fingerprint(toy_home):
    folder = fetch(TOY_ASSET)
    info = _marker(folder)
    assert set(info["files"]) == set(info["file_sha256"]) == set(info["file_ends"]) == {WEIGHTS, BIG_FILE}
    assert info["file_ends"][BIG_FILE] == fingerprint(folder / BIG_FILE)
    assert is_cached(TOY_ASSET) and is_cached(TOY_ASSET, deep=True)


@pytest.mark.parametrize("offset", [0, ENDS_BYTES - 4, -4], ids=["first-byte", "end-of-first-mib", "last-bytes"])
def test_same_size_damage_near_an_end_is_re_extracted_on_load(toy_home, offset):
    folder = fetch(TOY_ASSET)
    good = (folder / BIG_FILE).read_bytes()
    overwrite(folder / BIG_FILE, offset, b"\xff\xfe\xfd\xfc")
    assert not is_cached(TOY_ASSET)
    assert fetch(TOY_ASSET) == folder and (folder / BIG_FILE).read_bytes() == good


def test_damage_in_the_middle_needs_the_full_hash(toy_home):
    folder = fetch(TOY_ASSET)
    overwrite(folder / BIG_FILE, ENDS_BYTES + 10, b"\xff\xfe\xfd\xfc")  # outside both fingerprinted MiB
    assert is_cached(TOY_ASSET) and not is_cached(TOY_ASSET, deep=True)
    fetch(TOY_ASSET, verify=True)
    assert is_cached(TOY_ASSET, deep=True)


def test_cut_file_is_re_extracted(toy_home):
    folder = fetch(TOY_ASSET)
    (folder / BIG_FILE).write_bytes((folder / BIG_FILE).read_bytes()[:1000])  # a half-written file
    assert not is_cached(TOY_ASSET)
    fetch(TOY_ASSET)
    assert (folder / BIG_FILE).stat().st_size == 3 * 2**20


def test_cache_from_before_fingerprints_loads_and_records_them(toy_home):
    folder = fetch(TOY_ASSET)
    expected = _marker(folder)["file_ends"]
    _strip_fingerprints(folder)
    assert is_cached(TOY_ASSET)  # an old marker is still a complete entry
    assert fetch(TOY_ASSET) == folder
    assert _marker(folder)["file_ends"] == expected  # recorded on the first load


def test_verified_fetch_of_an_old_cache_records_fingerprints(toy_home):
    folder = fetch(TOY_ASSET)
    expected = _marker(folder)["file_ends"]
    _strip_fingerprints(folder)
    assert fetch(TOY_ASSET, verify=True) == folder and _marker(folder)["file_ends"] == expected


def test_oldest_cache_without_any_digest_loads_and_records_fingerprints(toy_home):
    folder = fetch(TOY_ASSET)
    _strip_fingerprints(folder, keep_sha256=False)
    assert fetch(TOY_ASSET) == folder and "file_ends" in _marker(folder)


def test_old_cache_damaged_before_the_upgrade_is_re_extracted_not_recorded(toy_home):
    folder = fetch(TOY_ASSET)
    good = (folder / BIG_FILE).read_bytes()
    _strip_fingerprints(folder)
    overwrite(folder / BIG_FILE, 0, b"\xff\xfe\xfd\xfc")  # the one full sha256 check at upgrade finds it
    fetch(TOY_ASSET)
    assert (folder / BIG_FILE).read_bytes() == good and is_cached(TOY_ASSET, deep=True)


def test_broken_safetensors_header_in_an_old_cache_is_re_extracted(toy_home):
    folder = fetch(TOY_ASSET)
    _strip_fingerprints(folder, keep_sha256=False)  # nothing but sizes and the header itself to go by
    weights = folder / WEIGHTS
    good = weights.read_bytes()
    broken = good.replace(b'"data_offsets":[0,', b'"data_offsets":[1,', 1)
    assert len(broken) == len(good) and broken != good
    weights.write_bytes(broken)
    assert not is_cached(TOY_ASSET)
    fetch(TOY_ASSET)
    assert weights.read_bytes() == good


def test_safetensors_problem_accepts_good_and_names_bad_files(tmp_path, toy_home):
    good = fetch(TOY_ASSET) / WEIGHTS
    assert safetensors_problem(good) is None
    data = good.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    cases = {
        "short.safetensors": (data[:5], "too short"),
        "huge-length.safetensors": (struct.pack("<Q", 10**12) + data[8:], "header length"),
        "not-json.safetensors": (data[:8] + b"X" + data[9:], "not valid JSON"),
        "cut.safetensors": (data[:-4], "outside the 52 data bytes"),
        "padded.safetensors": (data + b"\0" * 8, "cover 56 of the 64 data bytes"),
        "shape.safetensors": (data.replace(b'"shape":[3,4]', b'"shape":[4,4]', 1), "spans 48 bytes"),
        "gap.safetensors": (data.replace(b"[0,48]", b"[8,48]", 1), "spans 40 bytes"),
        "overlap.safetensors": (data.replace(b'"shape":[4],"data_offsets":[48,56]',
                                             b'"shape":[2],"data_offsets":[44,48]', 1), "gap or overlap"),
    }
    assert all(c[0] != data for c in cases.values())
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        problem = safetensors_problem(path)
        assert problem and fragment in problem, (name, problem)
    assert 8 + length < len(data)


def test_read_only_cache_with_a_damaged_asset_is_one_clear_user_error(toy_home):
    folder = fetch(TOY_ASSET)
    overwrite(folder / BIG_FILE, 0, b"\xff\xfe\xfd\xfc")
    with read_only(toy_home), pytest.raises(UserError) as err:
        fetch(TOY_ASSET)
    msg = str(err.value)
    assert "\n" not in msg and f"cannot fetch asset {TOY_ASSET!r}" in msg and BIG_FILE in msg
    assert f"the cache folder {toy_home} is read-only" in msg and "set TUNESCOPE_HOME to a writable folder" in msg
    assert not is_cached(TOY_ASSET)  # nothing was changed


def test_read_only_cache_that_os_access_calls_writable_is_a_user_error(toy_home, monkeypatch):
    """Where os.access says yes but the file system refuses (e.g. some network mounts), the OSError from the
    extraction becomes the same UserError."""
    fetch_module = importlib.import_module("tunescope.assets.fetch")  # the package re-exports fetch() as .fetch
    folder = fetch(TOY_ASSET)
    overwrite(folder / BIG_FILE, -4, b"\xff\xfe\xfd\xfc")
    monkeypatch.setattr(fetch_module, "_unwritable_folder", lambda asset: None)
    with read_only(toy_home), pytest.raises(UserError, match="is read-only .*set TUNESCOPE_HOME"):
        fetch(TOY_ASSET)


def test_read_only_cache_that_is_intact_loads(toy_home):
    folder = fetch(TOY_ASSET)
    _strip_fingerprints(folder)  # an old marker cannot be upgraded here: it must load anyway
    with read_only(toy_home):
        assert fetch(TOY_ASSET) == folder
        assert fetch(TOY_ASSET, verify=True) == folder
    assert "file_ends" not in _marker(folder)


def test_read_only_empty_cache_says_how_to_fix_it(toy_home):
    with read_only(toy_home), pytest.raises(UserError, match="it is not fetched yet; the cache folder .* read-only"):
        fetch(TOY_ASSET)
