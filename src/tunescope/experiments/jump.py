"""`tunescope jump`: the displacement profile Psi_l, jump rate zeta_l and J of several models, side by side.

Each model (named asset, folder, hub id, or a `tunescope pretrain` run directory, which expands to all
of its checkpoints) reads the same documents (the corpus's held-out split, first `limit` documents,
each truncated to `max_length` tokens by the model's own tokenizer). One forward pass per batch through
the transformer trunk; padding is masked out. Output: results.json (`jump` = the first model's profile,
`jump.models[]` = every model), jump_profile.png (overlaid profiles, x = relative depth l / L), report.html.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tunescope.config import Options, check
from tunescope.experiments.recipe import run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.io import is_main_process

if TYPE_CHECKING:
    import torch

# Module level stays light (torch, the corpus and the models are imported where they are used): the CLI builds
# `tunescope jump --help` from JumpConfig.

log = logging.getLogger(__name__)


@dataclass
class JumpConfig(Options):
    """What `tunescope jump` measures: the displacement profile of each model on held-out documents of a corpus."""

    models: list[str] = field(default_factory=lambda: ["minilm-l6"])
    """models to compare: named assets, folders, hub ids, or pretrain run directories (all checkpoints)"""
    data: str = "news_text"
    """text corpus whose held-out documents are read (named asset, local file or hub id)"""
    text_column: str | None = None
    """column holding the text"""
    limit: int = 64
    """number of held-out documents"""
    max_length: int = 128
    """tokens per document (truncated)"""
    batch_size: int = 8
    """documents per forward pass"""
    seed: int = 0
    """seed of the corpus's held-out split"""

    def validate(self) -> None:
        check(len(self.models) >= 1, "models", self.models, "at least one --model")
        check(self.limit >= 1, "limit", self.limit, "a positive integer")
        check(self.max_length >= 2, "max_length", self.max_length, "at least 2")
        check(self.batch_size >= 1, "batch_size", self.batch_size, "a positive integer")


def expand_models(names: list[str]) -> list[tuple[str, str]]:
    """(label, source) pairs: a pretrain run directory becomes one entry per checkpoint, in step order."""
    out = []
    for name in names:
        run = Path(name).expanduser()
        steps = sorted(run.glob("checkpoints/step-*/model.safetensors")) if run.is_dir() else []
        if steps and not (run / "model.safetensors").exists():
            for weights in steps:
                step = int(re.sub(r"\D", "", weights.parent.name))
                out.append((f"{run.name}@{step}", str(weights.parent)))
        else:
            out.append((name, name))
    return out


def text_batches(tokenizer, texts: list[str], max_length: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Padded, truncated batches (input_ids, attention_mask [B, T])."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    batches = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        batches.append({k: enc[k] for k in ("input_ids", "attention_mask")})
    return batches


def measure(label: str, source: str, texts: list[str], config: JumpConfig) -> dict:
    """The profile of one model on `texts` (one forward pass per batch)."""
    from tunescope.diagnostics.jump import jump_profile
    from tunescope.models.layers import model_layout
    from tunescope.models.load import load_encoder_or_lm

    model, tokenizer = load_encoder_or_lm(source)
    layout = model_layout(model)
    start = time.perf_counter()
    profile = jump_profile(model, text_batches(tokenizer, texts, config.max_length, config.batch_size))
    entry = {"model": label, "source": source, "model_type": layout.model_type, "family": layout.family,
             "layers": layout.num_layers, **profile.as_dict(), "seconds": time.perf_counter() - start}
    log.info("%s: Psi_L %.4f, zeta_L %.3f, J %.2f (%d tokens)", label, profile.psi[-1], profile.zeta_last,
             profile.J, profile.tokens)
    del model
    return entry


def run_jump(config: JumpConfig, out_dir: str | Path) -> dict:
    """Measure every model, write results.json, jump_profile.png and report.html into `out_dir`."""
    from tunescope.data.corpus import load_corpus
    from tunescope.report.plots import save_figure
    from tunescope.report.sections.jump import profile_figure

    def body(rd: RunDir) -> dict:
        corpus = load_corpus(config.data, text_column=config.text_column, seed=config.seed)
        texts = corpus.heldout[: config.limit]
        entries = [measure(label, source, texts, config) for label, source in expand_models(config.models)]
        first = entries[0]
        if is_main_process():
            save_figure(profile_figure(entries), rd.path / "jump_profile.png")
        return {"title": "tunescope: jump profile", "model": ", ".join(config.models),
                "data": config.data, "seed": config.seed, "documents": len(texts),
                "jump": {"psi": first["psi"], "zeta": first["zeta"], "J": first["J"], "zeta_L": first["zeta_L"],
                         "tokens": first["tokens"], "model": first["model"], "models": entries}}

    return run_recipe("jump", config, out_dir, body)
