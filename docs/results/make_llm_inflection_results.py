"""Tables and plots of docs/results/llm_inflection.md from the suite's run directories (numbers are read, never
typed).

    .venv/bin/python docs/results/make_llm_inflection_results.py runs/exp/llm
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from llm_common import HERE, command_block, fill_page, load, mean_sd  # noqa: E402

from tunescope.diagnostics.selection import select_inflection_layers  # noqa: E402
from tunescope.report.plots import save_figure  # noqa: E402

ARMS = [("inflection-band-s0", "diagnosed band (lora-inflection)"), ("lora-s0", "all 30 layers (r = 8)"),
        ("inflection-random1-s0", "random layers, draw 1"), ("inflection-random2-s0", "random layers, draw 2"),
        ("inflection-random3-s0", "random layers, draw 3")]


def _col(layers: list[dict], key: str) -> list[float]:
    return [row.get(key, float("nan")) for row in layers]


def _decay(act: list[float]) -> list[float]:
    return [math.log(act[i + 1] / act[i]) for i in range(len(act) - 1)]


def band_summary(root: Path) -> str:
    """The band before and after SFT: its entropy and gradient decay against the whole model's."""
    head = ("| profile | band (w = 8) | mean attention entropy: band / all layers | mean decay step log(A_l+1 / A_l):"
            " band / all layers | act. gradient norm, first / last layer |\n|---|---|---|---|---|")
    rows = []
    tables = [("pre-trained (diagnose, probe of the training split)", load(root, "diagnose-pretrained"),
               "diagnostics")]
    for run, label in (("full-s0", "after full SFT"), ("lora-s0", "after LoRA SFT (r = 8, all layers)")):
        tables.append((label, load(root, run), "diagnostics_after"))
    for label, res, key in tables:
        if res is None or key not in res:
            continue
        layers = res[key]["layers"]
        ent, act = _col(layers, "attn_entropy"), _col(layers, "act_grad_norm")
        band = select_inflection_layers(ent, act, 8).layers
        dec = _decay(act)
        band_dec = [dec[i] for i in band if i < len(dec)]
        rows.append(f"| {label} | {band[0]}-{band[-1]} | {np.mean([ent[i] for i in band]):.3f} / {np.mean(ent):.3f} | "
                    f"{np.mean(band_dec):.3f} / {np.mean(dec):.3f} | {act[0]:.3g} / {act[-1]:.3g} |")
    return head + "\n" + "\n".join(rows)


def cka_table(root: Path) -> str:
    """Delta-CKA per layer after SFT next to how many principal components hold 99% of the pre-trained block
    output's variance (llm_pca_check.py): k = 1 means one massive-activation direction is all the PCA basis keeps."""
    check, full, lora = load(root, "pca-check"), load(root, "full-s0"), load(root, "lora-s0")
    if check is None or full is None:
        return "(pca-check or full-s0 missing)"
    after_full = full["diagnostics_after"]["layers"]
    after_lora = lora["diagnostics_after"]["layers"] if lora else [{} for _ in after_full]
    head = ("| layer | PCA components for 99% | top component's share | max / median token norm | Delta-CKA full SFT | "
            "Delta-CKA LoRA SFT |\n|---|---|---|---|---|---|")
    rows = [f"| {c['layer']} | {c['components_for_99']} | {c['top_component_share']:.3f} | "
            f"{c['max_over_median_token_norm']:.0f} | {f['delta_cka']:.2g} | {lo.get('delta_cka', float('nan')):.2g} |"
            for c, f, lo in zip(check["layers"], after_full, after_lora)]
    return head + "\n" + "\n".join(rows)


def arms_table(root: Path) -> tuple[str, dict]:
    head = ("| arm | layers | LoRA rank (q, v) | trainable params | task acc. log-lik % | task acc. generate % | "
            "test loss | validation loss | news_text perplexity after / before |\n|---|---|---|---|---|---|---|---|---|")
    rows, losses = [], {}
    for run, label in ARMS:
        res = load(root, run)
        if res is None:
            continue
        ev = res["eval"]
        layers = res.get("adapted_layers") or []
        span = "all" if len(layers) == 30 else ",".join(map(str, layers))
        rank = res.get("lora", {}).get("rank") if isinstance(res.get("lora"), dict) else None
        rank = rank or _rank_from_command(res["command_line"])
        rows.append(f"| {label} | {span} | {rank} | {res['trainable_params']:,} | "
                    f"{100 * ev['task_accuracy_loglik']:.1f} | {100 * ev['task_accuracy_generate']:.1f} | "
                    f"{ev['loss']:.4f} | {ev['validation_loss']:.4f} | {res['retention']['perplexity_ratio']:.3f} |")
        losses[run] = ev
    randoms = [losses[r]["loss"] for r, _ in ARMS if r.startswith("inflection-random") and r in losses]
    if randoms and "inflection-band-s0" in losses:
        band = losses["inflection-band-s0"]["loss"]
        beaten = sum(band < r for r in randoms)
        rows.append(f"| random draws, mean ± sd | | | | "
                    f"{mean_sd([losses[r]['task_accuracy_loglik'] for r, _ in ARMS if r in losses and 'random' in r], 100)}"
                    f" | {mean_sd([losses[r]['task_accuracy_generate'] for r, _ in ARMS if r in losses and 'random' in r], 100)}"
                    f" | {mean_sd(randoms, digits=4)} | | |")
        z = ((band - statistics.mean(randoms)) / statistics.stdev(randoms)
             if len(randoms) > 1 and statistics.stdev(randoms) > 0 else float("nan"))
        rows.append(f"| **band vs chance** | | | | | | band's test loss is lower than {beaten} of {len(randoms)} random "
                    f"draws (z = {z:.2f}) | | |")
    return head + "\n" + "\n".join(rows), losses


def _rank_from_command(command: str) -> str:
    words = command.split()
    return words[words.index("--lora-rank") + 1] if "--lora-rank" in words else "8"


def profile_plot(root: Path) -> None:
    pre = load(root, "diagnose-pretrained")
    full, lora = load(root, "full-s0"), load(root, "lora-s0")
    if pre is None:
        return
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=110)
    before = pre["diagnostics"]["layers"]
    x = list(range(len(before)))
    band = pre["diagnostics"]["inflection_layers"]
    curves = [("pre-trained", before, "C0")]
    if full and "diagnostics_after" in full:
        curves.append(("after full SFT", full["diagnostics_after"]["layers"], "C1"))
    if lora and "diagnostics_after" in lora:
        curves.append(("after LoRA SFT", lora["diagnostics_after"]["layers"], "C2"))
    for label, layers, color in curves:
        axes[0].plot(x, _col(layers, "attn_entropy"), color=color, label=label)
        axes[1].semilogy(x, _col(layers, "act_grad_norm"), color=color, label=label)
    for label, res, color in (("full SFT", full, "C1"), ("LoRA SFT", lora, "C2")):
        if res and "diagnostics_after" in res:
            axes[2].plot(x, _col(res["diagnostics_after"]["layers"], "delta_cka"), color=color, label=label)
    for ax, title in zip(axes, ("attention entropy (nats)", "activation gradient norm", "Delta-CKA vs pre-trained")):
        ax.axvspan(band[0] - 0.5, band[-1] + 0.5, color="grey", alpha=0.15, label="diagnosed band")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle("smollm2-135m on the quartz SFT loss (probe: 2 x 16 training examples)", fontsize=9)
    save_figure(fig, HERE / "llm_inflection_profile.png")


def arms_plot(losses: dict) -> None:
    if not losses:
        return
    fig, ax = plt.subplots(figsize=(6.5, 3.0), dpi=110)
    names = [(r, lab) for r, lab in ARMS if r in losses]
    for i, (run, _) in enumerate(names):
        color = "C3" if run == "inflection-band-s0" else ("C0" if run == "lora-s0" else "C7")
        ax.bar(i, losses[run]["loss"], color=color, alpha=0.6)
    ax.set_xticks(range(len(names)), [lab.replace(" (", "\n(").replace(", draw", "\ndraw") for _, lab in names],
                  fontsize=7)
    ax.set_ylabel("quartz test loss")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title("LoRA at equal trainable parameters (seed 0)", fontsize=9)
    save_figure(fig, HERE / "llm_inflection_arms.png")


def main(root: Path) -> None:
    profile_plot(root)
    table, losses = arms_table(root)
    arms_plot(losses)
    fill_page(HERE / "llm_inflection.md", {"band": band_summary(root), "arms": table, "cka": cka_table(root),
                                           "commands": command_block(root, ["diagnose-pretrained", "full-s0",
                                                                            *[r for r, _ in ARMS]])})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/exp/llm"))
