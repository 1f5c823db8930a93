"""Tables and plots of docs/results/llm_basins.md from the suite's run directories (numbers are read, never typed).

    .venv/bin/python docs/results/make_llm_basins_results.py runs/exp/llm

Units: a random or worst-case direction delta has ||delta|| = sqrt(d), so a radius a is the per-parameter standard
deviation of the perturbation (the GO noise sigma is in the same unit) and its L2 length is a * sqrt(d).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from llm_common import HERE, command_block, fill_page, load  # noqa: E402

from tunescope.report.plots import save_figure  # noqa: E402

# (landscape run, what it measures): seed 0 only (llm_suite.py: a landscape is 13-45 minutes of one CPU thread)
BASINS = [("basin-basic-pretrained", "basic (news_text next-token acc.) at the pre-trained model"),
          ("basin-basic-full-s0", "basic (news_text next-token acc.) at the full-SFT model"),
          ("basin-specific-full-s0", "specific (quartz completion-token acc.) at the full-SFT model"),
          ("basin-specific-go-full-s0", "specific (quartz completion-token acc.) at the GO-SFT model")]
# plain and GO SFT on both seeds (seed 1: task, loss and retention; its basins were not measured)
SFT_RUNS = [(f"{run}-s{seed}", f"{label}, seed {seed}") for seed in (0, 1)
            for run, label in (("full", "plain SFT (full)"), ("go-full", "GO SFT (full, noise-injected)"))]


def _g(x: float) -> str:
    return f"{x:.3g}"


def basin_table(root: Path) -> str:
    head = ("| basin | S(theta) | floor S - tau | random radius a, median (min-max) | worst-case radius a | "
            "random / worst | sft direction: radius + / towards base | evaluations |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for name, label in BASINS:
        res = load(root, name)
        if res is None:
            continue
        b = res["basin"]
        rnd, worst, sft = b.get("random"), b.get("worst"), b.get("sft")
        rrange = _radius_range(rnd)
        wr = _g(worst["median_radius"]) if worst else "-"
        ratio = f"{rnd['median_radius'] / worst['median_radius']:.0f}x" if rnd and worst and worst["median_radius"] else "-"
        sf = f"{_g(sft['radii_positive'][0])} / {_g(sft['radii_negative'][0])}" if sft else "-"
        evals = sum(b[k]["evaluations"] for k in ("random", "worst", "sft") if k in b)
        rows.append(f"| {label} | {b['score']:.4f} | {b['threshold']:.4f} | {rrange} | {wr} | {ratio} | {sf} | "
                    f"{evals} |")
    return head + "\n" + "\n".join(rows)


def displacement_table(root: Path) -> str:
    """||theta_sft - theta_0|| against the basic basin's radius, and the basic capability after SFT."""
    basic = load(root, "basin-basic-pretrained")
    head = ("| SFT run | GO sigma | ‖theta_sft - theta_0‖ (L2) | same, in a units | basic random radius a at "
            "theta_0 | inside the basic basin? | news_text next-token acc. theta_0 -> theta_sft | news_text "
            "perplexity after / before |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for run, label in SFT_RUNS:
        sft_res = load(root, run)
        # any landscape of this run with an sft direction knows ||theta_sft - theta_0|| (its base_scale)
        line = next((r for n in (f"basin-basic-{run}", f"basin-specific-{run}")
                     if (r := load(root, n)) is not None and "sft" in r["basin"]), None)
        if sft_res is None or line is None or basic is None:
            continue
        s = line["basin"]["sft"]
        a_dist = -s["base_scale"]
        l2 = a_dist * s["direction_norm"]
        radius = basic["basin"]["random"]["median_radius"]
        after = load(root, "basin-basic-full-s0") if run == "full-s0" else None
        acc = (f"{basic['basin']['score']:.4f} -> {after['basin']['score']:.4f}" if after else "-")
        rows.append(f"| {label} | {sft_res.get('go', {}).get('noise_sigma', 0)} | {l2:.3g} | {_g(a_dist)} | {_g(radius)} | "
                    f"{'yes' if a_dist < radius else 'no'} ({a_dist / radius:.2f} of the radius) | {acc} | "
                    f"{sft_res['retention']['perplexity_ratio']:.3f} |")
    return head + "\n" + "\n".join(rows)


def go_table(root: Path) -> str:
    """Plain vs GO SFT per seed: the task, retention and (where measured) the specific basin's radii; then GO's
    widening per seed."""
    head = ("| SFT run | GO sigma | task acc. log-lik % | task acc. generate % | test loss | news_text perplexity "
            "after / before | specific random radius a, median (min-max) | specific worst radius a |\n"
            "|---|---|---|---|---|---|---|---|")
    rows, radii = [], {}
    for run, label in SFT_RUNS:
        res, spec = load(root, run), load(root, f"basin-specific-{run}")
        if res is None:
            continue
        ev = res["eval"]
        b = spec["basin"] if spec else {}
        rnd = b.get("random")
        radii[run] = (rnd["median_radius"] if rnd else None, b["worst"]["median_radius"] if "worst" in b else None)
        rows.append(f"| {label} | {res.get('go', {}).get('noise_sigma', 0)} | {100 * ev['task_accuracy_loglik']:.1f} | "
                    f"{100 * ev['task_accuracy_generate']:.1f} | {ev['loss']:.3f} | "
                    f"{res['retention']['perplexity_ratio']:.3f} | "
                    f"{_radius_range(rnd)} | {_g(radii[run][1]) if radii[run][1] else '-'} |")
    for seed in (0, 1):
        plain, go = radii.get(f"full-s{seed}"), radii.get(f"go-full-s{seed}")
        if plain and go and all(plain) and all(go):
            rows.append(f"| **GO / plain, seed {seed}** | | | | | | **{go[0] / plain[0]:.1f}x** | "
                        f"**{go[1] / plain[1]:.0f}x** |")
    return head + "\n" + "\n".join(rows)


def _radius_range(rnd: dict | None) -> str:
    """'median (min-max)' of a direction kind's radii, or '-'."""
    return f"{_g(rnd['median_radius'])} ({_g(min(rnd['radii']))}-{_g(max(rnd['radii']))})" if rnd else "-"


def curves_plot(root: Path) -> None:
    """Score along each direction kind, one panel per landscape (four per row)."""
    names = [(n, label) for n, label in BASINS if load(root, n) is not None]
    if not names:
        return
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), dpi=110, squeeze=False)
    for ax, (name, label) in zip(axes.flat, names):
        b = load(root, name)["basin"]
        for i, (kind, c) in enumerate(b.get("curves", {}).items()):
            for j, scores in enumerate(c["scores"]):
                ax.plot(c["grid"], scores, color=f"C{i}", lw=1.5, label=kind if j == 0 else None)
        ax.axhline(b["threshold"], color="grey", ls=":", lw=1, label="floor S - tau")
        ax.set_title(label.replace(" at ", "\nat "), fontsize=7)
        ax.set_xlabel("a (per-parameter scale)", fontsize=8)
        ax.set_ylabel("score S", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.tight_layout()
    save_figure(fig, HERE / "llm_basins_curves.png")


def main(root: Path) -> None:
    curves_plot(root)
    names = [n for n, _ in BASINS] + [r for r, _ in SFT_RUNS]
    fill_page(HERE / "llm_basins.md", {"basins": basin_table(root), "displacement": displacement_table(root),
                                       "go": go_table(root), "commands": command_block(root, names)})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/exp/llm"))
