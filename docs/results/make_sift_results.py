"""Tables and plots of docs/results/sift.md from the run directories (numbers are read, never typed).

    .venv/bin/python docs/results/make_sift_results.py runs/exp/sift [runs/exp/sift-rate0.001 ...] [--sparsity RUN]
The first experiment folder's plot is sift_accuracy.png, a further one's sift_accuracy_<folder name>.png.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tunescope.report.plots import save_figure  # noqa: E402
from tunescope.report.sections.sparsity import sparsity_figure  # noqa: E402

HERE = Path(__file__).parent
ORDER = ["full", "lora", "sift", "sift-random"]


def accuracy_table(exp: Path, plot_name: str = "sift_accuracy.png") -> str:
    rows, accs = [], {}
    for name in ORDER:
        runs = sorted(exp.glob(f"{name}-s*/results.json"))
        res = [json.loads(p.read_text()) for p in runs]
        if not res:
            continue
        acc = [r["eval"]["accuracy"] for r in res]
        accs[name] = acc
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        state = res[0].get("sift", {}).get("optimizer_state_bytes")
        share = res[0].get("sift", {}).get("grad_topk_share")
        rows.append(f"| {name} | {len(acc)} | {100 * statistics.mean(acc):.1f} ± {100 * sd:.1f} | "
                    f"{', '.join(f'{100 * a:.1f}' for a in acc)} | {res[0]['trainable_params']:,} | "
                    f"{statistics.mean(r['eval'].get('nll', float('nan')) for r in res):.3f} | "
                    f"{statistics.mean(r['wall_seconds'] for r in res):.0f} | "
                    f"{'' if share is None else f'{share:.3f}'} | {'' if state is None else f'{state:,}'} |")
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=110)
    for i, name in enumerate(accs):
        ax.scatter([i] * len(accs[name]), [100 * a for a in accs[name]], color="C0", alpha=0.6)
        ax.bar(i, 100 * statistics.mean(accs[name]), color="C0", alpha=0.3)
    ax.set_xticks(range(len(accs)), [a.replace("-lr", "\nlr ") for a in accs], fontsize=8)
    ax.set_ylim(40, 100)
    import numpy as np

    y = np.load(sorted(exp.glob("*-s*/logits.npz"))[0])["test_labels"]
    ax.axhline(100 * max(y.mean(), 1 - y.mean()), color="grey", ls=":", lw=1, label="majority class (seed-0 test)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("rotten_tomatoes, minilm-l6 (bars: mean, dots: seeds)")
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, HERE / plot_name)
    head = ("| strategy | seeds | test accuracy % (mean ± sd) | per seed | trainable params | test NLL | "
            "wall s | grad_topk_share | optimizer_state_bytes |\n|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def epoch_table(exp: Path) -> str:
    """Validation accuracy after each epoch, mean over seeds (and per seed), for every strategy found."""
    head = "| strategy | " + " | ".join(f"epoch {e}" for e in (1, 2, 3)) + " |\n|---|---|---|---|"
    rows = []
    for name in ORDER:
        res = [json.loads(p.read_text()) for p in sorted(exp.glob(f"{name}-s*/results.json"))]
        if not res:
            continue
        curves = [[e["accuracy"] for e in r["eval"]["accuracy_by_epoch"]] for r in res]
        cells = []
        for i in range(min(len(c) for c in curves)):
            per_seed = [c[i] for c in curves]
            cells.append(f"{100 * statistics.mean(per_seed):.1f} ({', '.join(f'{100 * a:.1f}' for a in per_seed)})")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(rows)


def sparsity_table(run: Path) -> str:
    res = json.loads((run / "results.json").read_text())["sparsity"]
    save_figure(sparsity_figure(res, "minilm-l6 on rotten_tomatoes: gradient quasi-sparsity"),
                HERE / "sift_sparsity.png")
    fr = res["fractions"]
    head = ("| tensors | entries | " + " | ".join(f"top {100 * p:g}%" for p in fr)
            + " | entries holding 99% |\n|---|---|" + "---|" * (len(fr) + 1))
    rows = []
    for label, part in (("all 2-D block weights", res), ("attention q,k,v,o", res["attention_qkvo"])):
        rows.append(f"| {label} | {part['num_params']:,} | "
                    + " | ".join(f"{100 * part['overall'][str(p)]:.1f}%" for p in fr)
                    + f" | {100 * part['entries_for_99']:.1f}% |")
    return head + "\n" + "\n".join(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", type=Path, help="folders of <strategy>-seed<s> run folders")
    parser.add_argument("--sparsity", action="append", default=[], type=Path, help="a `tunescope sparsity` run")
    args = parser.parse_args()
    for n, exp in enumerate(args.experiments):
        print(f"\n{exp}:\n")
        print(accuracy_table(exp, "sift_accuracy.png" if n == 0 else f"sift_accuracy_{exp.name}.png"))
        print("\nvalidation accuracy % by epoch, mean (per seed):\n")
        print(epoch_table(exp))
    for run in args.sparsity:
        print(f"\n{run}:\n" + sparsity_table(run))
