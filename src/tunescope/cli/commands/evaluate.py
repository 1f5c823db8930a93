"""`tunescope evaluate RUN_OR_MODEL --data X`: a finished run, model folder or adapter on other data, beside its
baseline (the majority class for a classifier, the base model for a causal LM); see experiments/evaluate.py."""

from __future__ import annotations

import argparse

SPLITS = ("test", "validation", "train", "all")  # experiments.evaluate.SPLITS (not imported: --help stays light)
# The rows of the table, per task, in this order; a key the evaluation lacks (no choices) is left out.
ROWS = {"classification": ("accuracy", "nll", "ece", "mce", "brier"),
        "causal-lm": ("loss", "perplexity", "mean_token_accuracy", "task_accuracy_loglik", "task_accuracy_generate")}


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def format_table(evaluation: dict) -> str:
    """The metric table printed for a human: one row per metric, the model and its baseline side by side."""
    ev, baseline = evaluation["eval"], evaluation.get("baseline") or {}
    if evaluation["task"] == "classification":
        heading = f"majority class {baseline['majority_label']!r}"
        base = {"accuracy": baseline["accuracy"]}
    else:
        heading = f"base {baseline['model']}" if baseline else "base"
        base = baseline
    rows = [key for key in ROWS[evaluation["task"]] if key in ev]
    width = max(len(k) for k in rows)
    lines = [f"{'metric'.ljust(width)}  {'model':>10}  {heading}"]
    lines += [f"{key.ljust(width)}  {_cell(ev[key]):>10}  {_cell(base.get(key))}" for key in rows]
    return "\n".join(lines)


def _header(evaluation: dict) -> str:
    """What was evaluated on what: 'RUN (finetune run, lora) on DATA, test split: N examples (seed 0, ...)'."""
    run = evaluation.get("run")
    what = f"{run['command']} run, strategy {run['strategy']}" if run else evaluation["kind"]
    ev = evaluation["eval"]
    size = (f"{ev['examples']:,} examples" if evaluation["task"] == "classification"
            else f"{ev['examples']:,} examples, {ev['tokens']:,} loss tokens")
    limit = f"limit {evaluation['limit']}" if evaluation["limit"] else "no limit"
    return (f"{evaluation['source']} ({what}) on {evaluation['data']}, {evaluation['split']} split: {size} "
            f"(seed {evaluation['seed']}, max_length {evaluation['max_length']}, {limit})")


def _evaluate(args: argparse.Namespace) -> int:
    from tunescope.cli.commands.finetune import print_warnings
    from tunescope.experiments.evaluate import EVALUATION_FILE, evaluate_run

    evaluation = evaluate_run(args.run_or_model, args.data, split=args.split, limit=args.limit,
                              batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
                              text_column=args.text_column, label_column=args.label_column, base=args.base,
                              out=args.out)
    args.json_payload = evaluation  # --json prints this (no recipe ran)
    print(_header(evaluation))
    print(format_table(evaluation))
    if evaluation.get("baseline_note"):
        print(f"base model: none ({evaluation['baseline_note']})")
    print_warnings(evaluation)
    if args.out:
        print(f"evaluation: {args.out}/{EVALUATION_FILE}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a finished run, model folder or adapter on other data, beside "
                                        "the baseline",
                       description="Evaluate RUN_OR_MODEL (a finished finetune / sft run directory, a model folder, "
                                   "a PEFT adapter folder, a SIFT delta folder or its SHiRA export) on a split of "
                                   "--data, split with the same seed as training. Classifiers: accuracy, NLL, ECE "
                                   "beside the majority-class baseline of that data (the labels must be the run's). "
                                   "Causal LMs: loss, perplexity, mean token accuracy and, with choices, task "
                                   "accuracy, beside the base model's. Prints a table; writes nothing unless --out.")
    p.add_argument("run_or_model", metavar="RUN_OR_MODEL",
                   help="a finished run directory, a model / adapter / SIFT delta folder, or a model name")
    p.add_argument("--data", required=True,
                   help="data: a named asset, a local csv/tsv/jsonl/json/parquet file, or a hub id")
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="which split of --data (all: the three together; default test)")
    p.add_argument("--limit", type=int, default=None,
                   help="cap on examples per split (default: the run's when --data is the run's data, else none)")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the run's, or 128)")
    p.add_argument("--max-length", type=int, default=None,
                   help="maximum tokens per example (default: the run's; 64 classification, 256 SFT)")
    p.add_argument("--seed", type=int, default=None, help="seed of the data split (default: the run's, or 0)")
    p.add_argument("--text-column", default=None, help="text column of a local or hub data set (default: auto)")
    p.add_argument("--label-column", default=None,
                   help="label column of a local or hub classification data set (default: auto)")
    p.add_argument("--no-base", dest="base", action="store_false",
                   help="causal LM: skip the base model's evaluation (it loads and runs a second model)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write DIR/evaluation.json (atomically; an earlier one there is replaced); default: "
                        "nothing is written")
    p.set_defaults(handler=_evaluate)
