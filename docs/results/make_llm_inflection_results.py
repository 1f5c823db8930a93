"""Tables and plots of docs/results/llm_inflection.md from the suite's run directories (numbers are read, never
typed).

    .venv/bin/python docs/results/make_llm_inflection_results.py runs/exp/llm
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from llm_common import HERE, command_block, fill_page, load, mean_sd  # noqa: E402

from tunescope.diagnostics.selection import gradient_decay, select_inflection_layers  # noqa: E402
from tunescope.report.plots import save_figure  # noqa: E402

SEEDS = (0, 1)


def arms(seed: int) -> list[tuple[str, str]]:
    """(run, label) of one seed's five arms: the band, all layers, and the three random draws (seed 0 draws 1-3,
    seed 1 draws 4-6: llm_suite.random_layer_sets)."""
    return [(f"inflection-band-s{seed}", "diagnosed band (lora-inflection)"),
            (f"lora-s{seed}", "all 30 layers (r = 8)"),
            *[(f"inflection-random{i}-s{seed}", f"random layers, draw {i + 3 * seed}") for i in (1, 2, 3)]]


def _col(layers: list[dict], key: str) -> list[float]:
    return [row.get(key, float("nan")) for row in layers]


def band_summary(root: Path) -> str:
    """The band before and after SFT, per seed's probe: its entropy and gradient decay against the whole model's."""
    head = ("| profile | band (w = 8) | mean attention entropy: band / all layers | mean decay step log(A_l+1 / A_l):"
            " band / all layers | act. gradient norm, first / last layer |\n|---|---|---|---|---|")
    rows = []
    tables = [("pre-trained, seed 0 probe (diagnose)", load(root, "diagnose-pretrained"), "diagnostics"),
              ("pre-trained, seed 1 probe (lora-inflection's own diagnosis)", load(root, "inflection-band-s1"),
               "diagnostics")]
    for run, label in (("full-s0", "after full SFT, seed 0"), ("lora-s0", "after LoRA SFT (r = 8, all layers), seed 0"),
                       ("lora-s1", "after LoRA SFT (r = 8, all layers), seed 1")):
        tables.append((label, load(root, run), "diagnostics_after"))
    for label, res, key in tables:
        if res is None or key not in res:
            continue
        layers = res[key]["layers"]
        ent, act = _col(layers, "attn_entropy"), _col(layers, "act_grad_norm")
        band = select_inflection_layers(ent, act, 8).layers
        dec = np.asarray(gradient_decay(act))  # NaN at the last layer: nanmean skips it
        band_dec = dec[band]
        rows.append(f"| {label} | {band[0]}-{band[-1]} | {np.mean([ent[i] for i in band]):.3f} / {np.mean(ent):.3f} | "
                    f"{np.nanmean(band_dec):.3f} / {np.nanmean(dec):.3f} | {act[0]:.3g} / {act[-1]:.3g} |")
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
    """One row per seed and arm, then per seed the random draws' mean and where the band falls among them, and
    over both seeds how many of the six random placements the band's test loss beats."""
    head = ("| seed | arm | layers | LoRA rank (q, v) | trainable params | task acc. log-lik % | "
            "task acc. generate % | test loss | validation loss | news_text perplexity after / before |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
    rows, losses = [], {}
    beaten_all, drawn_all, z_all = 0, 0, []
    for seed in SEEDS:
        for run, label in arms(seed):
            res = load(root, run)
            if res is None:
                continue
            ev = res["eval"]
            layers = res.get("adapted_layers") or []
            span = "all" if len(layers) == 30 else ",".join(map(str, layers))
            rows.append(f"| {seed} | {label} | {span} | {_rank_from_command(res['command_line'])} | "
                        f"{res['trainable_params']:,} | {100 * ev['task_accuracy_loglik']:.1f} | "
                        f"{100 * ev['task_accuracy_generate']:.1f} | {ev['loss']:.4f} | {ev['validation_loss']:.4f} | "
                        f"{res['retention']['perplexity_ratio']:.3f} |")
            losses[run] = ev
        randoms = [r for r, _ in arms(seed) if "random" in r and r in losses]
        band_run = f"inflection-band-s{seed}"
        if len(randoms) < 2 or band_run not in losses:
            continue
        random_loss = [losses[r]["loss"] for r in randoms]
        band = losses[band_run]["loss"]
        beaten = sum(band < r for r in random_loss)
        spread = statistics.stdev(random_loss)
        z = (band - statistics.mean(random_loss)) / spread if spread > 0 else float("nan")
        beaten_all, drawn_all = beaten_all + beaten, drawn_all + len(random_loss)
        z_all.append(z)
        rows.append(f"| {seed} | random draws, mean ± sd | | | | "
                    f"{mean_sd([losses[r]['task_accuracy_loglik'] for r in randoms], 100)} | "
                    f"{mean_sd([losses[r]['task_accuracy_generate'] for r in randoms], 100)} | "
                    f"{mean_sd(random_loss, digits=4)} | | |")
        rows.append(f"| {seed} | **band vs chance** | | | | | | band's test loss is lower than {beaten} of "
                    f"{len(random_loss)} random draws (z = {z:.2f}) | | |")
    if len(z_all) > 1:
        rows.append(f"| both | **band vs chance** | | | | | | lower than {beaten_all} of {drawn_all} random draws; "
                    f"z = {', '.join(f'{z:.2f}' for z in z_all)} | | |")
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
    """Test loss per arm, one group of bars per seed."""
    if not losses:
        return
    fig, axes = plt.subplots(1, len(SEEDS), figsize=(10, 3.0), dpi=110, sharey=True)
    for ax, seed in zip(np.atleast_1d(axes), SEEDS):
        names = [(r, lab) for r, lab in arms(seed) if r in losses]
        for i, (run, _) in enumerate(names):
            color = "C3" if run.startswith("inflection-band") else ("C0" if run.startswith("lora-") else "C7")
            ax.bar(i, losses[run]["loss"], color=color, alpha=0.6)
        ax.set_xticks(range(len(names)), [lab.replace(" (", "\n(").replace(", draw", "\ndraw") for _, lab in names],
                      fontsize=7)
        ax.set_ylim(0.2, None)
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(f"seed {seed}", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("quartz test loss (axis from 0.2)")
    fig.suptitle("LoRA at equal trainable parameters (460,800)", fontsize=9)
    save_figure(fig, HERE / "llm_inflection_arms.png")


def main(root: Path) -> None:
    profile_plot(root)
    table, losses = arms_table(root)
    arms_plot(losses)
    fill_page(HERE / "llm_inflection.md", {"band": band_summary(root), "arms": table, "cka": cka_table(root),
                                           "commands": command_block(root, ["diagnose-pretrained", "full-s0",
                                                                            *[r for seed in SEEDS
                                                                              for r, _ in arms(seed)]])})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/exp/llm"))
