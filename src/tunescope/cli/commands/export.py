"""`tunescope export RUN --format peft [--out DIR]`: a SIFT run's delta as an adapter other tools load.

peft: a SHiRA adapter folder (default RUN/checkpoints/final-peft) that plain
`PeftModel.from_pretrained(base_model, DIR)` loads; see strategies/sift/export.py and docs/sift.md.
"""

from __future__ import annotations

import argparse

FORMATS = ("peft",)


def _export(args: argparse.Namespace) -> int:
    from tunescope.strategies.sift.export import (
        export_info,
        export_peft_shira,
        load_snippet,
    )

    out = export_peft_shira(args.run, args.out)
    info = export_info(out)
    args.json_payload = {"adapter": str(out), **info}  # --json prints this, not an earlier recipe's results
    print(f"peft SHiRA adapter: {out}")
    print(f"base model {info['base_model_name_or_path']}; rank r={info['r']} over {info['target_modules']} modules: "
          f"{info['selected_entries']:,} SIFT entries + {info['padding_entries']:,} zero-padding entries "
          f"({info['padding_bytes']:,} bytes; the logits are unchanged)")
    print("load it with plain transformers + peft:")
    print(load_snippet(str(out), info["base_model_name_or_path"], info["label_names"]), end="")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a SIFT run as a peft adapter (SHiRA)",
                       description="Write RUN's SIFT delta (checkpoints/final) as a peft SHiRA adapter folder that "
                                   "plain PeftModel.from_pretrained(base_model, DIR) loads, with the same outputs. "
                                   "Every SIFT fine-tuning run already writes one to checkpoints/final-peft.")
    p.add_argument("run", metavar="RUN", help="a SIFT run directory (or its checkpoints/final folder)")
    p.add_argument("--format", choices=FORMATS, default="peft",
                   help="peft: a SHiRA adapter (the only format so far; default)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="the adapter folder to write (default RUN/checkpoints/final-peft; an earlier export there "
                        "is replaced)")
    p.set_defaults(handler=_export)
