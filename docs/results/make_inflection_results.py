"""Tables and plots of docs/results/inflection.md from a `tunescope transfer` run directory.

    .venv/bin/python docs/results/make_inflection_results.py runs/exp/transfer [RUN_DIR of `tunescope run`]
"""
import json, sys
from pathlib import Path
from tunescope.report.transfer_figures import transfer_figures
from tunescope.report.plots import save_figure
from tunescope.report.sections.diagnostics import layer_figure
out = Path("docs/results")
r = json.load(open(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/exp/transfer") / "results.json"))
t = r["transfer"]
for name, fig in transfer_figures(r).items():
    save_figure(fig, out / f"inflection_transfer_{name}.png")
print("| source regime | epochs | final training loss | source test acc |\n|---|---|---|---|")
for reg, s in t["sources"].items():
    print(f"| {reg.upper()} | {s['epochs']} | {s['train_loss_final']:.3f} | {s['source_test_accuracy']:.3f} |")
print("\n| source regime | target strategy | test accuracy (mean ± std) | seeds | per-seed | trainable params | adapted layers |\n|---|---|---|---|---|---|---|")
for reg, by in t["summary"].items():
    for st, s in by.items():
        runs = [x for x in t["runs"] if x["regime"] == reg and x["strategy"] == st]
        per = ", ".join(f"{x['accuracy']:.3f}" for x in sorted(runs, key=lambda x: x["seed"]))
        layers = sorted({str(x["adapted_layers"]) for x in runs})
        print(f"| {reg.upper()} | {st} | {s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} | {s['n']} | {per} | {s['trainable_params']:,} | {'; '.join(layers) if st != 'full' else 'all (full)'} |")
print("\nfinding:", json.dumps(t["finding"]))
print("\ndiagnostics before (seed-0 probe), per regime:")
for reg in t["summary"]:
    run = next(x for x in t["runs"] if x["regime"] == reg and x["strategy"] == "lora-inflection" and x["seed"] == 0)
    print(reg, "band", run["inflection_layers"])
    print("| layer | H_l | H_l/log n | A_l | G_l | G_l/‖θ_l‖ |\n|---|---|---|---|---|---|")
    for row in run["diagnostics_before"]:
        print(f"| {row['layer']} | {row['attn_entropy']:.3f} | {row['attn_entropy_norm']:.3f} | {row['act_grad_norm']:.3g} | {row['param_grad_norm']:.3g} | {row['param_grad_rel']:.3g} |")
print("\nmean Delta-CKA after target FT (over seeds):")
import numpy as np
for reg, by in t["summary"].items():
    for st in by:
        runs = [x for x in t["runs"] if x["regime"] == reg and x["strategy"] == st]
        cka = np.array([[row["delta_cka"] for row in x["diagnostics_after"]] for x in runs])
        print(reg, st, " ".join(f"{v:.4f}" for v in cka.mean(0)))

# The `tunescope run` profile (pre-trained vs fine-tuned at the band), when its run directory is given.
if len(sys.argv) > 2:
    run = json.load(open(Path(sys.argv[2]) / "results.json"))
    d = run["diagnostics"]
    fig = layer_figure(d["layers"], d["inflection_layers"], run.get("diagnostics_after", {}).get("layers"),
                       title=f"minilm-l6 on rotten_tomatoes, tunescope run: LoRA at layers {d['inflection_layers']}")
    save_figure(fig, out / "inflection_minilm_profile.png")
