"""`tunescope sft --strategy S`: supervised fine-tuning of a causal LM (trl's SFTTrainer) on chat / prompt data."""

from __future__ import annotations

import argparse

from tunescope.cli.common import add_common_options, add_config_flags, make_run_dir


def _summary(results: dict) -> list[str]:
    """The lines printed after a run: test loss metrics, task accuracy (with choices), the model before training,
    retention, sizes and dropped examples."""
    ev = results.get("eval", {})
    lines = [(f"test loss {ev['loss']:.4f}  perplexity {ev['perplexity']:.3f}  mean token accuracy "
              f"{ev['mean_token_accuracy']:.4f}  ({ev['tokens']:,} completion tokens in {ev['examples']:,} examples)")]
    if "task_accuracy_loglik" in ev:
        lines.append(f"task accuracy: generate {ev['task_accuracy_generate']:.4f}  log-likelihood "
                     f"{ev['task_accuracy_loglik']:.4f}  ({ev['task_examples']:,} questions)")
    before = results.get("eval_before")
    if before:
        text = (f"before training: test loss {before['loss']:.4f}  mean token accuracy "
                f"{before['mean_token_accuracy']:.4f}")
        if "task_accuracy_loglik" in before:
            text += (f"  task accuracy generate {before['task_accuracy_generate']:.4f}  log-likelihood "
                     f"{before['task_accuracy_loglik']:.4f}")
        lines.append(text)
    kept = results.get("retention")
    if kept:
        lines.append(f"retention ({kept['data']}, {kept['docs']} held-out documents, {kept['tokens']:,} tokens): "
                     f"perplexity {kept['perplexity_before']:.3f} before, {kept['perplexity_after']:.3f} after "
                     f"(x{kept['perplexity_ratio']:.3f}); next-token accuracy {kept['accuracy_before']:.4f} before, "
                     f"{kept['accuracy_after']:.4f} after")
    dropped = sum((results.get("preparation") or {}).get("dropped_long_prompts", {}).values())
    lines.append(f"trainable {results.get('trainable_params', 0):,} / {results.get('total_params', 0):,}"
                 f"  loss on: {(results.get('preparation') or {}).get('loss_on')}"
                 + (f"  dropped (prompt longer than max_length): {dropped}" if dropped else ""))
    return lines


def _sft(args: argparse.Namespace) -> int:
    from tunescope.cli.commands.finetune import load_finetune_config
    from tunescope.experiments.sft import SFTConfig, sft
    from tunescope.io import is_main_process

    config = load_finetune_config(args, SFTConfig)  # on --resume: the saved config, and no flag that changes it
    run_dir = make_run_dir(args, f"sft-{config.strategy}")
    results = sft(config, run_dir, resume=args.resume, overwrite=bool(getattr(args, "overwrite", False)))
    if not is_main_process():
        return 0
    for line in _summary(results):
        print(line)
    print(f"report: {run_dir / 'report.html'}")
    return 0


def register(sub) -> None:
    from tunescope.cli.commands import config_class

    p = sub.add_parser("sft", help="supervised fine-tuning of a causal LM (trl SFTTrainer) with one strategy",
                       description="Supervised fine-tuning of a causal LM on conversations, prompt / completion "
                                   "pairs or text, with trl's SFTTrainer and a strategy: full, lora, lora-inflection "
                                   "or sift. The loss is on the completion tokens.")
    add_common_options(p)
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its last complete checkpoint")
    add_config_flags(p, config_class("sft"), skip=("label_column",))  # SFT data has no labels (validate() says so)
    p.set_defaults(handler=_sft)
