"""`tunescope calibrate RUN_DIR`: ECE, MCE, NLL, Brier and temperature scaling of a finished run."""

from __future__ import annotations

import argparse


def _calibrate(args: argparse.Namespace) -> int:
    from tunescope.experiments.calibrate import calibrate_run

    rep = calibrate_run(args.run_dir, n_bins=args.bins, rerun=args.rerun)
    args.json_payload = rep  # what --json prints
    print(f"test accuracy {rep['accuracy']:.4f}  ECE {rep['ece']:.4f}  MCE {rep['mce']:.4f}  NLL {rep['nll']:.4f}  "
          f"Brier {rep['brier']:.4f}")
    if "temperature" in rep:
        print(f"temperature {rep['temperature']:.4g} (fitted on validation NLL) -> ECE {rep['ece_after_ts']:.4f}  "
              f"MCE {rep['mce_after_ts']:.4f}  NLL {rep['nll_after_ts']:.4f}  Brier {rep['brier_after_ts']:.4f}")
    print(f"logits from: {rep['source']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="calibration (ECE, temperature scaling) of a finished run",
                       description="Recompute calibration of RUN_DIR from its saved logits (logits.npz), or by "
                                   "re-running its final checkpoint; updates results.json and report.html.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--bins", type=int, default=15, help="equal-width confidence bins (default 15)")
    p.add_argument("--rerun", action="store_true",
                   help="recompute the logits from checkpoints/final instead of reading logits.npz")
    p.set_defaults(handler=_calibrate)
