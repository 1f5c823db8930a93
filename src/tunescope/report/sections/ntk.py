"""Report section: eNTK split P + F (FT ratio, ranks) and, when kernels.npz exists, the eigen-spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunescope.report.plots import figure_html, new_figure
from tunescope.report.sections import register_section
from tunescope.report.tables import key_values


@register_section("ntk", "eNTK decomposition (pre-train-effective P, FT-effective F)", order=26)
def ntk(results: dict, run_dir: Path) -> str | None:
    res = results.get("ntk")
    if not res:
        return None
    out = ("<p>P(x, x') = (&lt;phi(x), phi(x')&gt; + 1) I_C, F(x, x') = V J_phi(x) J_phi(x')^T V^T; FT ratio = mean_x "
           "||sum_i F d_i|| / ||sum_i (P + F) d_i||, d_i = e_y - softmax(f(x_i)).</p>")
    out += key_values(sorted((k, v) for k, v in res.items()))
    path = run_dir / "kernels.npz"
    if path.is_file():
        with np.load(path) as z:
            c = z["pd"].shape[1]
            p_eig = np.sort(np.linalg.eigvalsh(np.kron(z["kernel_p"], np.eye(c))))[::-1]
            f_eig = np.sort(np.linalg.eigvalsh((z["f"] + z["f"].T) / 2))[::-1]
        fig, ax = new_figure()
        for eig, label in ((p_eig, "P"), (f_eig, "F")):
            eig = np.clip(eig, 1e-12, None)
            ax.semilogy(np.arange(1, len(eig) + 1), eig, label=label)
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("eigenvalue")
        ax.set_title("Spectra of the kernels")
        ax.legend()
        out += figure_html(fig, "eigenvalues of P and F")
    return out
