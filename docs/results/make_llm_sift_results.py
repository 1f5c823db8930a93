"""Tables and plots of docs/results/llm_sift.md from the suite's run directories (numbers are read, never typed).

    .venv/bin/python docs/results/make_llm_sift_results.py runs/exp/llm
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from llm_common import HERE, command_block, fill_page, load, mean_sd, mib, train_seconds  # noqa: E402

from tunescope.report.plots import save_figure  # noqa: E402
from tunescope.report.sections.sparsity import sparsity_figure  # noqa: E402

ARMS = {"full": "full fine-tuning", "lora": "LoRA r=8 on q, v", "sift": "SIFT, top-k mask",
        "sift-random": "SIFT, random mask"}
SEEDS = (0, 1)
KINDS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _runs(root: Path, arm: str) -> list[tuple[str, dict]]:
    return [(f"{arm}-s{s}", r) for s in SEEDS if (r := load(root, f"{arm}-s{s}")) is not None]


def _training_peak(root: Path, arm: str) -> str:
    """Peak RSS of training alone, from the arm's short memory run (the high-water mark reset before training)."""
    res = load(root, f"memory-{arm}")
    if res is None or res["memory"].get("peak_rss_scope") != "training":
        return "-"
    return mib(res["memory"]["peak_rss_bytes"])


def strategy_table(root: Path) -> tuple[str, dict]:
    head = ("| arm | seeds | trained entries | task acc. log-lik % | task acc. generate % | test loss | "
            "validation loss | news_text perplexity after / before | optimizer state MiB | training state MiB | "
            "peak RSS of training MiB | training s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows, acc = [], {}
    before = [r["eval_before"] for _, r in _runs(root, "full") if "eval_before" in r]
    if before:
        rows.append(f"| pre-trained (no SFT) | {len(before)} | 0 | "
                    f"{mean_sd([b['task_accuracy_loglik'] for b in before], 100)} | "
                    f"{mean_sd([b['task_accuracy_generate'] for b in before], 100)} | "
                    f"{mean_sd([b['loss'] for b in before], digits=3)} | - | 1 | 0 | 0 | - | - |")
        acc["pre-trained"] = ([b["task_accuracy_loglik"] for b in before],
                              [b["task_accuracy_generate"] for b in before], [b["loss"] for b in before])
    for arm, label in ARMS.items():
        runs = _runs(root, arm)
        if not runs:
            continue
        res = [r for _, r in runs]
        ev = [r["eval"] for r in res]
        trained = res[0].get("sift", {}).get("selected_params", res[0]["trainable_params"])
        secs = [t for name, _ in runs if (t := train_seconds(root, name)) is not None]
        mem = [r.get("memory", {}) for r in res]
        rows.append(
            f"| {label} | {len(res)} | {trained:,} | {mean_sd([e['task_accuracy_loglik'] for e in ev], 100)} | "
            f"{mean_sd([e['task_accuracy_generate'] for e in ev], 100)} | {mean_sd([e['loss'] for e in ev], digits=3)}"
            f" | {mean_sd([e['validation_loss'] for e in ev], digits=3)} | "
            f"{mean_sd([r['retention']['perplexity_ratio'] for r in res], digits=3)} | "
            f"{mib(mem[0].get('optimizer_state_bytes', float('nan')))} | "
            f"{mib(mem[0].get('training_state_bytes', float('nan')))} | "
            f"{_training_peak(root, arm)} | {mean_sd(secs, digits=0)} |")
        acc[arm] = ([e["task_accuracy_loglik"] for e in ev], [e["task_accuracy_generate"] for e in ev],
                    [e["loss"] for e in ev])
    return head + "\n" + "\n".join(rows), acc


def accuracy_plot(acc: dict) -> None:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    names = list(acc)
    for i, name in enumerate(names):
        loglik, gen, loss = acc[name]
        ax.bar(i - 0.2, 100 * sum(loglik) / len(loglik), 0.4, color="C0", alpha=0.4,
               label="log-likelihood" if i == 0 else None)
        ax.scatter([i - 0.2] * len(loglik), [100 * a for a in loglik], color="C0", s=12)
        ax.bar(i + 0.2, 100 * sum(gen) / len(gen), 0.4, color="C1", alpha=0.4, label="generation" if i == 0 else None)
        ax.scatter([i + 0.2] * len(gen), [100 * a for a in gen], color="C1", s=12)
        if name != "pre-trained":  # its loss (~3.7) would flatten the differences between the SFT arms
            bx.bar(i, sum(loss) / len(loss), color="C2", alpha=0.4)
            bx.scatter([i] * len(loss), loss, color="C2", s=12)
    for a in (ax, bx):
        a.set_xticks(range(len(names)), names, fontsize=8)
        a.grid(alpha=0.3, axis="y")
    ax.axhline(50, color="grey", ls=":", lw=1, label="chance (2 choices)")
    ax.set_ylabel("quartz test task accuracy (%)")
    ax.legend(fontsize=7)
    trained = [v for n in names if n != "pre-trained" for v in acc[n][2]]
    if trained:
        bx.set_ylim(0.9 * min(trained), 1.05 * max(trained))
    bx.set_ylabel("test loss (completion tokens)")
    bx.set_title("pre-trained: ~3.7, off the scale", fontsize=8)
    fig.suptitle("smollm2-135m SFT on quartz (bars: mean, dots: seeds)", fontsize=10)
    save_figure(fig, HERE / "llm_sift_accuracy.png")


def sparsity_table(root: Path) -> str:
    runs = [(name, r["sparsity"]) for name in ("sparsity-quartz", "sparsity-quartz-s1")
            if (r := load(root, name)) is not None]
    if not runs:
        return "(no sparsity run yet)"
    save_figure(sparsity_figure(runs[0][1], "smollm2-135m, SFT loss on quartz: gradient quasi-sparsity"),
                HERE / "llm_sift_sparsity.png")
    fr = runs[0][1]["fractions"]
    head = ("| run | tensors | entries | " + " | ".join(f"top {100 * p:g}%" for p in fr)
            + " | entries holding 99% |\n|---|---|---|" + "---|" * (len(fr) + 1))
    rows = []
    for name, res in runs:
        parts = [("all 2-D block weights", res)] + [(k, res["per_kind"][k]) for k in KINDS if k in res["per_kind"]]
        for label, part in parts:
            rows.append(f"| {name} ({res['examples']} seq., {res['loss_tokens']} loss tokens) | {label} | "
                        f"{part['num_params']:,} | "
                        + " | ".join(f"{100 * part['overall'][str(p)]:.1f}%" for p in fr)
                        + f" | {100 * part['entries_for_99']:.1f}% |")
    return head + "\n" + "\n".join(rows)


def main(root: Path) -> None:
    table, acc = strategy_table(root)
    accuracy_plot(acc)
    names = ([f"{a}-s{s}" for s in SEEDS for a in ARMS] + [f"memory-{a}" for a in ARMS]
             + ["sparsity-quartz", "sparsity-quartz-s1"])
    fill_page(HERE / "llm_sift.md", {"strategies": table, "sparsity": sparsity_table(root),
                                     "commands": command_block(root, names)})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/exp/llm"))
