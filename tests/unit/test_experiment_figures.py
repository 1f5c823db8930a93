"""The figures of the basins and transfer experiments (report/basins_figures.py, report/transfer_figures.py)."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt

from tunescope.report.basins_figures import plot_basins
from tunescope.report.transfer_figures import transfer_figures


def _basin(score: float) -> dict:
    grid = [-0.2, -0.1, 0.0, 0.1, 0.2]
    return {"curves": {kind: {"grid": grid, "scores": [[score - abs(a) for a in grid]]} for kind in ("random", "sft")}}


def test_plot_basins_writes_both_pngs_from_the_runs_landscape_results(tmp_path):
    rows = []
    for i, run in enumerate(("full-go0", "lora-go0")):
        (tmp_path / run / "landscape").mkdir(parents=True)
        (tmp_path / run / "landscape" / "results.json").write_text(json.dumps({"basin": _basin(0.8 - 0.1 * i)}))
        rows.append({"run": run, "random_radii": [0.1 + i, 0.2 + i], "worst_radius": 0.05, "sft_radius": 0.3})
    plot_basins({"rows": rows}, tmp_path)
    for name in ("basins_radii.png", "basins_curves.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not plt.get_fignums()  # save_figure closes what it drew


def test_transfer_figures_draw_accuracy_profiles_and_delta_cka():
    layers = [{"layer": i, "attn_entropy": 1.0 + i, "act_grad_norm": 0.1 * (i + 1), "param_grad_norm": 0.2,
               "delta_cka": 0.01 * i} for i in range(3)]
    runs = [{"regime": regime, "strategy": strategy, "seed": 0, "accuracy": 0.7, "inflection_layers": [1],
             "diagnostics_before": layers, "diagnostics_after": layers}
            for regime in ("under", "over") for strategy in ("lora", "lora-inflection")]
    summary = {regime: {s: {"accuracy_mean": 0.7, "accuracy_std": 0.01, "n": 1, "trainable_params": 10}
                        for s in ("lora", "lora-inflection")} for regime in ("under", "over")}
    figs = transfer_figures({"transfer": {"runs": runs, "summary": summary}})
    assert list(figs) == ["accuracy", "profiles", "delta_cka"]
    titles = [ax.get_title() for ax in figs["profiles"].axes]
    assert any("entropy" in t for t in titles) and len(figs["delta_cka"].axes) == 2
    for fig in figs.values():
        plt.close(fig)
