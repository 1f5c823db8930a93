"""`tunescope assets list` / `tunescope assets fetch NAME...`: the named offline models and data sets."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from tunescope.assets import ASSETS, cache_home, is_cached

    print(f"cache: {cache_home()}")
    for name, a in ASSETS.items():
        state = "cached" if is_cached(name) else "not fetched"
        print(f"{name:18s} {a.kind:15s} {a.requirement:28s} {state:12s} {a.description}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tunescope.assets import ASSETS, fetch

    names = ASSETS.names() if args.names == ["all"] else args.names
    for name in names:
        ASSETS.get(name)  # validate all names before downloading anything
    for name in names:
        print(f"{name}: {fetch(name, force=args.force, verify=True)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("assets", help="list or fetch the named offline assets")
    s = p.add_subparsers(dest="assets_command", metavar="{list,fetch}", required=True)
    s.add_parser("list", help="list the assets and whether they are cached").set_defaults(handler=_list)
    f = s.add_parser("fetch", help="fetch assets into the cache ($TUNESCOPE_HOME); a cached copy is re-hashed "
                                   "and extracted again if any file differs")
    f.add_argument("names", nargs="+", metavar="NAME", help="asset names, or 'all'")
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    f.set_defaults(handler=_fetch)
