"""Calibration of a finished fine-tuning run, from its saved logits or by re-running its final checkpoint."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from tunescope.diagnostics.calibration import calibration_report
from tunescope.errors import UserError
from tunescope.experiments.analyses_lpft import CALIBRATION_KEYS
from tunescope.io import atomic_write_json


def _rerun_logits(run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Validation and test logits of RUN_DIR/checkpoints/final, on the run's own data split."""
    from tunescope.config import build_config, load_yaml
    from tunescope.data import load_classification
    from tunescope.data.tokenize import collator, tokenize_classification
    from tunescope.experiments.finetune import FinetuneConfig
    from tunescope.models.load import load_classifier
    from tunescope.strategies import STRATEGIES, StrategyContext
    from tunescope.training.evaluate import predict_logits

    final = run_dir / "checkpoints" / "final"
    if not final.is_dir():
        raise UserError(f"bad value {str(run_dir)!r} for RUN_DIR: no checkpoints/final to re-run")
    config = build_config(FinetuneConfig, load_yaml(run_dir / "config.yaml"))
    data = load_classification(config.data, text_column=config.text_column, label_column=config.label_column,
                               seed=config.seed, limit=config.limit)
    strategy = STRATEGIES.get(config.strategy)
    if strategy.saves_own_checkpoints:  # e.g. SIFT's sparse delta
        model, tokenizer = load_classifier(config.model, data.num_labels, label_names=data.label_names)
        ctx = StrategyContext(config=config, tokenizer=tokenizer, data=data, out_dir=run_dir)
        model = strategy.prepare(model, ctx)
        strategy.load(model, final)
    else:  # a full model folder or a PEFT adapter folder
        model, tokenizer = load_classifier(str(final), data.num_labels, label_names=data.label_names)
    tokenized = tokenize_classification(data, tokenizer, config.max_length)
    collate = collator(tokenizer)
    return {split: predict_logits(model, tokenized[split], collate, config.eval_batch_size)
            for split in ("validation", "test")}


def _saved_logits(path: Path, run_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (logits, labels) from logits.npz; UserError naming the file when it is truncated or incomplete
    (np.load without pickles: the file holds plain arrays only)."""
    rerun = (f"rerun `tunescope calibrate {run_dir} --rerun` to recompute the logits from checkpoints/final, or "
             "rerun the fine-tuning")
    if not zipfile.is_zipfile(path):  # np.load would take any other bytes for a pickle (and refuse it)
        raise UserError(f"bad file {str(path)!r}: truncated or corrupt, not an .npz (zip) archive; {rerun}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "test_logits" not in z or "test_labels" not in z:
                raise UserError(f"bad file {str(path)!r}: expected arrays test_logits and test_labels, found "
                                f"{', '.join(z.files) or 'none'}; {rerun}")
            # Reading every array here decompresses it, so a truncated member fails now, with its file named.
            return {s: (z[f"{s}_logits"], z[f"{s}_labels"]) for s in ("validation", "test")
                    if f"{s}_logits" in z and f"{s}_labels" in z}
    except UserError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise UserError(f"bad file {str(path)!r}: truncated or corrupt ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); {rerun}") from None


def calibrate_run(run_dir: str | Path, *, n_bins: int = 15, rerun: bool = False) -> dict:
    """Calibration report of a run (see diagnostics.calibration.calibration_report), written into its
    results.json (`eval` keys and `calibration`) and report; `source` says where the logits came from."""
    from tunescope.report.html import build_report, load_results

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise UserError(f"bad value {str(run_dir)!r} for RUN_DIR: expected a finished run directory with results.json")
    if n_bins < 1:
        raise UserError(f"bad value {n_bins!r} for --bins: expected a positive integer")
    results = load_results(run_dir)  # read (and checked) before any work: a corrupt file is named now
    saved = run_dir / "logits.npz"
    if saved.is_file() and not rerun:
        logits = _saved_logits(saved, run_dir)
        source = str(saved)
    else:
        logits = _rerun_logits(run_dir)
        source = str(run_dir / "checkpoints" / "final")
    val = logits.get("validation", (None, None))
    rep = calibration_report(*logits["test"], *val, n_bins=n_bins)
    ev = results.setdefault("eval", {})
    ev["accuracy"], ev["nll"] = rep["accuracy"], rep["nll"]
    for key in CALIBRATION_KEYS:
        if key in rep:
            ev[key] = rep[key]
    results["calibration"] = {"n_bins": n_bins, "reliability": rep["reliability"],
                              "reliability_after_ts": rep.get("reliability_after_ts")}
    atomic_write_json(results_path, results)
    build_report(run_dir)
    return {**rep, "source": source}
