"""`tunescope pretrain`: pre-train a small Llama-style model on a text corpus, with optional JREG.

Recipe (METHODS.md section 3): a size preset (models/presets.py), a byte-level BPE tokenizer trained on
the corpus's training documents (data/lm.py), packed blocks, AdamW + cosine schedule with warm-up,
loss = LM loss + lambda * R (training/regularizers.py; lambda = 0 is the plain loss). At each checkpoint
step the model is saved (safetensors) and evaluated on held-out blocks: held-out loss / perplexity and the
jump profile (Psi_l, zeta_l, J) come from the SAME forward pass. At the end, an optional linear probe
(sklearn logistic regression on mean-pooled final features) measures downstream quality.

Run directory: config.yaml, tokenizer/, checkpoints/step-NNNNNN/ (model.safetensors, config.json,
tokenizer; the newest also holds optimizer.pt + state.json for `--resume`), metrics.jsonl, results.json.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from transformers import (
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    get_cosine_schedule_with_warmup,
)

from tunescope.data.corpus import load_corpus
from tunescope.data.lm import block_batches, load_or_train_tokenizer, pack_blocks
from tunescope.diagnostics.jump import DisplacementCapture, JumpProfile
from tunescope.errors import UserError
from tunescope.experiments.pretrain_config import PretrainConfig  # re-exported
from tunescope.experiments.recipe import run_recipe
from tunescope.experiments.rundir import RunDir
from tunescope.io import append_jsonl, atomic_write, atomic_write_json
from tunescope.models.presets import (
    build_llama,
    count_parameters,
    llama_config,
)
from tunescope.training.noise import GaussianWeightNoise
from tunescope.training.regularizers import JumpRegularizer

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_heldout(model: LlamaForCausalLM, blocks: torch.Tensor, batch_size: int) -> tuple[float, JumpProfile]:
    """Held-out mean token cross-entropy and the jump profile, both from one forward pass per batch.

    blocks: [N, T] packed held-out tokens. Loss = mean over all predicted tokens (N * (T - 1)).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with DisplacementCapture(model) as cap:
            for batch in block_batches(blocks, batch_size):
                cap.set_mask(batch["attention_mask"])
                out = model(input_ids=batch["input_ids"], labels=batch["labels"])
                n = batch["input_ids"].numel() - batch["input_ids"].shape[0]
                total += float(out.loss) * n
                count += n
                cap.accumulate()
            profile = cap.profile()
    finally:
        model.train(was_training)
    return total / count, profile


@torch.no_grad()
def mean_pooled_features(model: LlamaForCausalLM, tokenizer, texts: list[str], max_length: int,
                         batch_size: int = 32) -> torch.Tensor:
    """Mean over valid tokens of the model's final (normed) hidden states: [len(texts), d]."""
    model.eval()
    feats = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        h = model.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        feats.append((h * m).sum(1) / m.sum(1).clamp_min(1))
    return torch.cat(feats)


def linear_probe(model: LlamaForCausalLM, tokenizer, source: str, *, limit: int, max_length: int,
                 seed: int) -> dict:
    """Linear-probe accuracy: standardised mean-pooled features -> L2 logistic regression (sklearn),
    fitted on the train split, scored on the test split."""
    from tunescope.data.classification import load_classification
    from tunescope.strategies.linear_probe import standardized_probe_accuracy

    data = load_classification(source, seed=seed, limit=limit)
    xtr = mean_pooled_features(model, tokenizer, list(data.train["text"]), max_length).numpy()
    xte = mean_pooled_features(model, tokenizer, list(data.test["text"]), max_length).numpy()
    accuracy = standardized_probe_accuracy(xtr, data.train["label"], xte, data.test["label"], max_iter=2000)
    return {"data": source, "accuracy": accuracy,
            "train_examples": len(xtr), "test_examples": len(xte), "features": "mean-pooled final hidden state"}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in {id(p): p for p in model.parameters() if p.requires_grad}.values():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batch_at(blocks: torch.Tensor, step: int, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
    """The batch of optimisation step `step` (0-based): epochs reshuffle with seed (seed, epoch), so the
    order is a pure function of the step and a resumed run sees exactly the same batches."""
    per_epoch = max(len(blocks) // batch_size, 1)
    epoch, i = divmod(step, per_epoch)
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    ids = blocks[order[i * batch_size:(i + 1) * batch_size]]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def _checkpoint_dir(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step-{step:06d}"


def _is_resumable(folder: Path) -> bool:
    """A checkpoint can be resumed from when its weights, optimizer state and state.json (written last, parsing)
    are all there."""
    if not ((folder / "model.safetensors").is_file() and (folder / "optimizer.pt").is_file()):
        return False
    try:
        json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _latest_resumable(out_dir: Path) -> Path | None:
    """The newest resumable checkpoint (an incomplete newest one falls back to the previous), or None."""
    found = sorted((out_dir / "checkpoints").glob("step-*"))
    return next((folder for folder in reversed(found) if _is_resumable(folder)), None)


def _save_resume_state(folder: Path, optimizer, state: dict) -> None:
    """Write the optimizer state, then state.json (the marker that the checkpoint is resumable), each atomically;
    only then drop the resume state of older checkpoints (marker first), so one resumable checkpoint always exists."""
    atomic_write(folder / "optimizer.pt", lambda tmp: torch.save(optimizer.state_dict(), tmp))
    atomic_write_json(folder / "state.json", state)
    for old in (folder.parent).glob("step-*"):
        if old != folder:
            (old / "state.json").unlink(missing_ok=True)
            (old / "optimizer.pt").unlink(missing_ok=True)


def train_step(model, batch: dict, regularizer: JumpRegularizer) -> tuple[torch.Tensor, float, float | None]:
    """One forward + backward: returns (total loss, LM loss, R or None). The JREG term uses the hidden
    states of this same forward pass (hooks), never a second pass."""
    with regularizer.track(model, batch["attention_mask"]) as tracked:
        out = model(**batch)
        loss = tracked.loss(out.loss)
    loss.backward()
    return loss.detach(), float(out.loss.detach()), tracked.penalty


def pretrain(config: PretrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Run the pre-training recipe into `out_dir`; returns the results dict (also written to results.json).

    `resume`: continue from the newest resumable checkpoint (from the start when the run was stopped before its
    first one); otherwise a non-empty `out_dir` is refused unless `overwrite`, which clears it first.
    """
    out = Path(out_dir)
    if resume and not (out / "config.yaml").is_file() and _latest_resumable(out) is None:
        raise UserError(f"nothing to resume in {str(out)!r}: no config.yaml and no resumable checkpoint")
    return run_recipe("pretrain", config, out_dir, lambda rd: _pretrain(config, rd, resume), resume=resume,
                      overwrite=overwrite)


def _pretrain(config: PretrainConfig, rd: RunDir, resume: bool) -> dict:
    """The body of the recipe: tokenizer, packed blocks, the training loop with JREG / GO, checkpoints, probe."""
    start_time = time.time()
    out_dir = rd.path
    # The tokenizer is saved before the first checkpoint, so it is complete whenever a checkpoint is resumable.
    last = _latest_resumable(out_dir) if resume else None
    corpus = load_corpus(config.data, text_column=config.text_column, seed=config.seed,
                         heldout_fraction=config.heldout_fraction, limit=config.limit)
    tok_dir = out_dir / "tokenizer"
    if last is not None:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    else:
        tokenizer = load_or_train_tokenizer(config.tokenizer, corpus.train, config.vocab_size)
        tokenizer.save_pretrained(tok_dir)
    need = config.steps * config.batch_size
    train_blocks = pack_blocks(corpus.train, tokenizer, config.max_length, max_blocks=need)
    held_blocks = pack_blocks(corpus.heldout, tokenizer, config.max_length, max_blocks=config.eval_blocks)
    mcfg = llama_config(config.preset, vocab_size=len(tokenizer), max_length=config.max_length,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = build_llama(mcfg, config.seed)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate,
                                  betas=(0.9, 0.95), eps=1e-8)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    regularizer = JumpRegularizer(lam=config.jreg, form=config.jreg_form)
    noise = GaussianWeightNoise(list(model.parameters()), config.noise_sigma) if config.noise_sigma > 0 else None
    results: dict = {"model": f"llama-{config.preset}", "preset": config.preset, "data": config.data,
                     "strategy": "pretrain", "seed": config.seed, "total_params": count_parameters(model),
                     "trainable_params": count_parameters(model), "vocab_size": len(tokenizer),
                     "jreg": {"lambda": config.jreg, "form": config.jreg_form},
                     "train_blocks": len(train_blocks), "heldout_blocks": len(held_blocks),
                     "block_size": config.max_length, "steps": config.steps, "checkpoints": []}
    metrics_path = out_dir / "metrics.jsonl"
    step = 0
    if last is not None:
        state = json.loads((last / "state.json").read_text())
        from safetensors.torch import load_model

        load_model(model, last / "model.safetensors")
        optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        results["checkpoints"] = state["checkpoints"]
        results["wall_seconds_before_resume"] = state.get("wall_seconds", 0.0)
        rd.trim_metrics(step)  # what the stopped attempt logged after this checkpoint is logged again
        log.info("resuming from %s (step %d)", last, step)
    elif metrics_path.exists():
        metrics_path.unlink()  # a fresh start (or a resume stopped before its first checkpoint): no old logs

    def checkpoint(at: int) -> None:
        loss, profile = evaluate_heldout(model, held_blocks, config.batch_size)
        entry = {"step": at, "tokens_seen": at * config.batch_size * config.max_length, "heldout_loss": loss,
                 "heldout_ppl": math.exp(min(loss, 50.0)), **profile.as_dict()}
        results["checkpoints"].append(entry)
        append_jsonl(metrics_path, {"kind": "checkpoint", **entry})
        folder = _checkpoint_dir(out_dir, at)
        (folder / "state.json").unlink(missing_ok=True)  # a re-save of this step is not resumable until complete
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        # Only the newest checkpoint keeps the (large) optimizer state needed to resume; the old one goes only
        # once the new one is complete.
        _save_resume_state(folder, optimizer, {"step": at, "scheduler": scheduler.state_dict(),
                                               "checkpoints": results["checkpoints"],
                                               "wall_seconds": time.time() - start_time
                                               + results.get("wall_seconds_before_resume", 0.0)})
        log.info("step %d: held-out loss %.4f (ppl %.1f), zeta_L %.3f, J %.2f", at, loss, entry["heldout_ppl"],
                 profile.zeta_last, profile.J)

    if step == 0 and 0 in config.checkpoint_steps:
        checkpoint(0)
    model.train()
    while step < config.steps:
        batch = _batch_at(train_blocks, step, config.batch_size, config.seed)
        if noise is not None:
            # GO: eps is a function of (seed, step), so a resumed run draws exactly what it would have drawn.
            noise.generator.manual_seed(config.seed * 1_000_003 + step)
            noise.perturb()
        total, lm_loss, penalty = train_step(model, batch, regularizer)
        if noise is not None:
            noise.restore()  # the gradient was taken at theta + eps; the step is applied to theta
        if not math.isfinite(float(total)):
            from tunescope.errors import TrainingDivergedError

            raise TrainingDivergedError(f"bad value {config.learning_rate!r} for learning_rate: the loss became "
                                        f"{float(total)} at step {step + 1}; expected a smaller learning rate")
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % config.log_every == 0 or step == config.steps:
            append_jsonl(metrics_path, {"kind": "train", "step": step, "loss": lm_loss, "jreg_penalty": penalty,
                                        "lr": scheduler.get_last_lr()[0]})
        if step in config.checkpoint_steps:
            checkpoint(step)

    final = results["checkpoints"][-1]
    results["jump"] = {k: final[k] for k in ("psi", "zeta", "J", "zeta_L", "tokens")}
    results["heldout_loss"], results["heldout_ppl"] = final["heldout_loss"], final["heldout_ppl"]
    if noise is not None:
        results["go"] = {"noise_sigma": config.noise_sigma, "noisy_params": sum(p.numel() for p in noise.params),
                         "draws": noise.draws}  # draws made by this process (after a resume: since the resume)
    if config.probe:
        results["probe"] = linear_probe(model, tokenizer, config.probe, limit=config.probe_limit,
                                        max_length=config.max_length, seed=config.seed)
    return results
