"""Why Delta-CKA reads ~0 in smollm2's middle layers: how many principal components hold 99% of the variance of
each block's output, and how far the largest token norm stands above the median (massive activations).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/llm_pca_check.py runs/exp/llm/pca-check

Inputs: the prompts of the first 16 quartz training examples (seed 0), plain tokenizer, no chat template; every
real token of every prompt is one row of X_l (block l's output). Writes OUT/results.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from tunescope.data.sft import load_sft
from tunescope.models.load import load_causal_lm


def main(out: Path) -> None:
    model, tokenizer = load_causal_lm("smollm2-135m")
    data = load_sft("quartz", seed=0, limit=32)
    prompts = [str(p) for p in data.train.select(range(16))["prompt"]]
    enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True, max_length=128)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[1:]  # block outputs
    mask = enc["attention_mask"].bool()
    rows = []
    for layer, h in enumerate(hidden):
        x = h[mask].float().numpy()
        centred = x - x.mean(0)
        var = np.linalg.svd(centred, compute_uv=False) ** 2
        share = np.cumsum(var) / var.sum()
        norms = np.linalg.norm(x, axis=1)
        rows.append({"layer": layer, "components_for_99": int(np.searchsorted(share, 0.99 - 1e-12)) + 1,
                     "top_component_share": float(var[0] / var.sum()),
                     "max_over_median_token_norm": float(norms.max() / np.median(norms))})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"tokens": int(mask.sum()), "layers": rows}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/exp/llm/pca-check"))
