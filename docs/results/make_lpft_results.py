"""Tables and plots of docs/results/lpft.md from the run directories (numbers are read, never typed).

    .venv/bin/python docs/results/make_lpft_results.py runs/lpft-compare runs/ntk-full runs/ntk-lora ...
Prints markdown tables; writes lpft_*.png next to this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tunescope.report.plots import save_figure
from tunescope.report.sections.calibration import reliability_figure
from tunescope.report.sections.comparison import bar_figure

HERE = Path(__file__).parent


def _f(v, s=None, digits=3):
    if v is None:
        return "-"
    return f"{v:.{digits}f} ± {s:.{digits}f}" if s is not None else f"{v:.{digits}f}"


def compare_tables(cmp_dir: Path) -> None:
    res = json.loads((cmp_dir / "results.json").read_text())
    summary = res["comparison"]["summary"]
    print(f"seeds {res['seeds']}; mean ± std over seeds\n")
    cols = [("accuracy", "test acc"), ("ece", "ECE"), ("ece_after_ts", "ECE after TS"), ("temperature", "T"),
            ("head_norm_init", "‖V‖ init"), ("head_norm_after_lp", "‖V‖ after LP"),
            ("head_norm_after_ft", "‖V‖ after FT"), ("feature_cosine", "feature cos"), ("feature_l2", "feature L2")]
    print("| strategy | " + " | ".join(c[1] for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for e in summary:
        cells = [_f(e.get(k), e.get(f"{k}_std"), 2 if k.startswith("head") or k == "temperature" else 3)
                 for k, _ in cols]
        print(f"| {e['strategy']} | " + " | ".join(cells) + " |")
    print("\nper run:\n")
    print("| run | test acc | ECE | ECE after TS | ‖V‖ after LP | ‖V‖ after FT | feature L2 | LP C |")
    print("|---|---|---|---|---|---|---|---|")
    for row in res["comparison"]["runs"]:
        r = json.loads((cmp_dir / row["run_dir"] / "results.json").read_text())
        print(f"| {row['run_dir']} | {_f(row['accuracy'])} | {_f(row['ece'])} | {_f(row['ece_after_ts'])} | "
              f"{_f(row['head_norm_after_lp'], digits=1)} | {_f(row['head_norm_after_ft'], digits=2)} | "
              f"{_f(row['feature_l2'])} | {_f((r.get('lp') or {}).get('lp_strength'), digits=3)} |")
    for col, title, name in (("accuracy", "test accuracy", "lpft_accuracy.png"),
                             ("ece", "ECE before / after temperature scaling", "lpft_ece.png"),
                             ("head_norm_after_lp", "head norm ||V||_F after LP / after FT", "lpft_head_norm.png"),
                             ("feature_l2", "feature change (mean L2, test split)", "lpft_feature_change.png")):
        save_figure(bar_figure(summary, col, title), HERE / name)
    for strategy in ("full", "lp-ft"):
        r = json.loads((cmp_dir / f"{strategy}-seed0" / "results.json").read_text())
        cal = r["calibration"]
        save_figure(reliability_figure(cal["reliability"], cal.get("reliability_after_ts"),
                                       f"{strategy}, seed 0 (test)"), HERE / f"lpft_reliability_{strategy}.png")


def ntk_table(dirs: list[Path]) -> None:
    print("\n| strategy | n | FT ratio | rank P | eff. rank P | eff. rank F | tr F / tr(P+F) | params in F | "
          "sketch diag error | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in dirs:
        r = json.loads((d / "results.json").read_text())
        n = r["ntk"]
        print(f"| {r['strategy']} | {n['n_samples']} | {n['ft_ratio']:.4g} | {n['pre_train_rank']} | "
              f"{n['pre_train_effective_rank']:.2f} | {n.get('ft_effective_rank', float('nan')):.2f} | "
              f"{n['ft_trace_share']:.3g} | {n['num_backbone_params']:,} | "
              f"{n.get('sketch_diag_rel_error', float('nan')):.2g} | {n['seconds']:.0f} |")


if __name__ == "__main__":
    compare_tables(Path(sys.argv[1]))
    ntk_table([Path(p) for p in sys.argv[2:] if (Path(p) / "results.json").is_file()])
