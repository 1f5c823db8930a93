"""Report section `jump`: displacement profiles (Psi_l vs relative depth), zeta_L and J; for a pretrain run
also the jump and held-out perplexity through the checkpoints, and the linear probe."""

from __future__ import annotations

import html
from pathlib import Path

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import table


def profile_figure(entries: list[dict], title: str = "displacement profile"):
    """Overlaid Psi_l profiles; x = relative depth l / L, so models of different depth line up."""
    fig, ax = new_figure()
    for e in entries:
        n = len(e["psi"])
        ax.plot([(i + 1) / n for i in range(n)], e["psi"], marker="o", ms=3, label=str(e.get("model", "")))
    ax.set_xlabel("relative depth l / L")
    ax.set_ylabel("Psi_l = mean (1 - cos(h_{l-1}, h_l)) / 2")
    ax.set_title(title)
    if len(entries) <= 12:
        ax.legend(fontsize=7)
    return fig


def checkpoint_figure(checkpoints: list[dict]):
    """zeta_L, J and held-out perplexity against the training step (three panels)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.0), dpi=110)
    steps = [c["step"] for c in checkpoints]
    for ax, key, label in zip(axes, ("zeta_L", "J", "heldout_ppl"),
                              ("zeta_L (final-layer jump rate)", "J = Psi_L / mean earlier Psi", "held-out ppl")):
        ax.plot(steps, [c.get(key) if c.get(key) is not None else float("nan") for c in checkpoints], marker="o")
        ax.set_xlabel("step")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    return fig


def _models_table(entries: list[dict]) -> str:
    rows = [(e["model"], e.get("layers", len(e["psi"])), e["psi"][0], e["psi"][-1],
             sum(e["psi"][:-1]) / max(len(e["psi"]) - 1, 1), e["zeta"][-1], e["J"], e.get("tokens"))
            for e in entries]
    return table(("model", "layers", "Psi_1", "Psi_L", "mean Psi_1..L-1", "zeta_L", "J", "tokens"), rows)


@register_section("jump", "Final-layer jump", order=70)
def render(results: dict, run_dir: Path) -> str | None:
    jump = results.get("jump")
    if not jump or "psi" not in jump:
        return None
    parts = ['<p>Psi_l = (1 - cos(h_{l-1}, h_l)) / 2 averaged over valid tokens (residual stream before the final '
             'norm); zeta_l = 100 * sum_{k>=l} max(0, Psi_k - Psi_{k-1}); J = Psi_L / mean(Psi_1..Psi_{L-1}).</p>']
    checkpoints = results.get("checkpoints") or []
    if checkpoints:  # a pretrain run
        jreg = results.get("jreg") or {}
        parts.append(f"<p>JREG lambda = {html.escape(str(jreg.get('lambda')))}, form "
                     f"{html.escape(str(jreg.get('form')))}.</p>")
        parts.append(table(("step", "tokens seen", "held-out loss", "held-out ppl", "Psi_L", "zeta_L", "J"),
                           [(c["step"], c.get("tokens_seen"), c["heldout_loss"], c["heldout_ppl"], c["psi"][-1],
                             c["zeta"][-1], c["J"]) for c in checkpoints]))
        parts.append(figure_html(checkpoint_figure(checkpoints), "jump and perplexity through training"))
        entries = [{**c, "model": f"step {c['step']}"} for c in checkpoints]
        parts.append(figure_html(profile_figure(entries, "profile at each checkpoint"), "profiles per checkpoint"))
        probe = results.get("probe")
        if probe:
            parts.append(f"<p>Linear probe on {html.escape(str(probe['data']))} ({html.escape(probe['features'])}): "
                         f"accuracy {probe['accuracy']:.4f} on {probe['test_examples']} test examples.</p>")
        return "".join(parts)
    entries = jump.get("models") or [{**jump, "model": jump.get("model", results.get("model", ""))}]
    parts.append(_models_table(entries))
    parts.append(figure_html(profile_figure(entries), "displacement profiles"))
    return "".join(parts)
