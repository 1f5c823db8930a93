"""`evaluate_run`: a finished run, a model folder or an adapter folder evaluated on (other) data, beside a baseline.

What can be evaluated (`resolve_subject`):
    run directory   RUN/results.json of a `finetune` / `run` run (classification) or an `sft` run (causal LM); the
                    model is RUN/checkpoints/final and max_length, seed, batch size, chat template, ... default to the
                    run's config.yaml
    model folder    a full model (a folder, a named model asset, a hub id) whose config.json names a
                    sequence-classification class (classification) or a causal-LM class (causal LM)
    adapter folder  a PEFT adapter (LoRA, or the SHiRA export of a SIFT run; adapter_config.json `task_type` SEQ_CLS /
                    CAUSAL_LM) or a SIFT delta folder (sift_config.json `task_type`)

The data X is read by the task's own loader with the same seeded 80/10/10 split as training (`split`: test,
validation, train, or all three as one), so a run evaluated on its own data gets its own test split back.

Metrics (the tasks' own evaluation, nothing re-implemented):
    classification  accuracy = mean(argmax_c z = y), nll = mean(-log softmax(z)_y) (tasks/classification.py);
                    ece = sum_b (n_b / N) |acc_b - conf_b|, mce = max_b |acc_b - conf_b| over `calibration_bins`
                    equal-width confidence bins, brier = mean_i sum_c (p_ic - 1[y_i = c])^2
                    (diagnostics/calibration.py)
    causal LM       loss = mean over the loss tokens of -log p(y_t | y_<t), perplexity = exp(loss),
                    mean_token_accuracy = share of loss tokens predicted by the argmax; with `choices`,
                    task_accuracy_loglik and task_accuracy_generate (tasks/causal_lm.py, tasks/choice_accuracy.py)
Baseline beside them:
    classification  the majority class m of X's train split (ties: the lowest class id) and its accuracy
                    mean(y == m) on the evaluated split (tasks.classification.majority_baseline)
    causal LM       the same metrics of the base model (the pre-trained model the run or adapter started from),
                    on the same tokenised rows; none for a full model folder given alone (it names no base)

A classifier is evaluated only on data with its own labels (same number, same names in the same order, where the
model records names), checked before any weights load: a head of another size would be silently re-initialised.
Nothing is written except `OUT/evaluation.json` (atomically) when `out` is given; the run itself is never touched.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunescope.config import build_config, check
from tunescope.errors import UserError
from tunescope.experiments.finetune import FinetuneConfig
from tunescope.experiments.rundir import RunDir
from tunescope.experiments.sft import SFTConfig
from tunescope.io import atomic_write_json
from tunescope.provenance import provenance
from tunescope.tasks import TASKS

SPLITS = ("test", "validation", "train", "all")
EVALUATION_FILE = "evaluation.json"
# The commands whose run directory holds one trained model, with the config class of their config.yaml and task.
RUN_COMMANDS: dict[str, tuple[type, str]] = {"finetune": (FinetuneConfig, "classification"),
                                             "sft": (SFTConfig, "causal-lm")}
CONFIG_OF_TASK = {"classification": FinetuneConfig, "causal-lm": SFTConfig}
# Which named data assets each task reads (the others are refused with the kind they are).
DATA_KINDS = {"classification": "classification", "causal-lm": "sft"}
# What a local data file holds for each task (named in the refusals).
_FORMATS = {"classification": "text + label columns",
            "causal-lm": "messages, prompt + completion, or text columns"}


@dataclass
class Subject:
    """What is evaluated. kind: run, model, adapter or sift-delta; task: classification or causal-lm;
    model_source: what the task loads; config: the run's saved config ({} for a folder); base_model: the
    pre-trained model (causal LM baseline; None when unknown); label_names / num_labels: a classifier's labels
    as far as the folder records them (None: not recorded)."""

    source: str
    kind: str
    task: str
    model_source: str
    config: dict = field(default_factory=dict)
    base_model: str | None = None
    label_names: list[str] | None = None
    num_labels: int | None = None
    run: dict | None = None  # strategy / model / data of a run directory


# ---- what is evaluated ----------------------------------------------------------------------------------------

def _task_of_type(task_type: str | None, where: str) -> str:
    """The registered task whose peft task type is `task_type` (SEQ_CLS, CAUSAL_LM)."""
    for name in TASKS.names():
        if TASKS.get(name).peft_task_type == task_type:
            return name
    accepted = ", ".join(TASKS.get(n).peft_task_type for n in TASKS.names())
    raise UserError(f"bad value {task_type!r} for task_type in {where}: expected one of {accepted}")


def _adapter_head_rows(folder: Path, modules: list[str]) -> int | None:
    """Classes of a PEFT classifier adapter: the rows of its saved head's output matrix, the smallest first dimension
    among the 2-D tensors of its `modules_to_save` (a two-layer head maps H -> H -> C, C < H). Read from the
    safetensors header only."""
    from safetensors import safe_open

    path = folder / "adapter_model.safetensors"
    if not path.is_file() or not modules:
        return None
    with safe_open(str(path), "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in list(f.keys())}  # safe_open is not iterable
    rows = [shape[0] for k, shape in shapes.items() if any(f".{m}." in k for m in modules) and len(shape) == 2]
    return min(rows) if rows else None


def _named(labels: list[str] | None) -> list[str] | None:
    """`labels`, or None for transformers' placeholder names LABEL_0, LABEL_1, ... (they name nothing)."""
    if not labels or labels == [f"LABEL_{i}" for i in range(len(labels))]:
        return None
    return [str(n) for n in labels]


def _full_model(name: str, source: str) -> tuple[str, list[str] | None, int | None]:
    """(task, label names, number of labels) of a full model, from its config.json: a sequence-classification
    class -> classification, a causal-LM class -> causal-lm (transformers' Auto mappings name the classes)."""
    from transformers import PretrainedConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    try:
        raw, _ = PretrainedConfig.get_config_dict(source)
    except (OSError, ValueError) as e:
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: could not read its config.json "
                        f"({str(e).splitlines()[0][:160]}); expected a finished run directory, a model folder or an "
                        "adapter folder") from None
    architectures = raw.get("architectures") or []
    if set(architectures) & set(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values()):
        id2label = raw.get("id2label") or {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)] if id2label else None
        return "classification", _named(names), len(names) if names else raw.get("num_labels")
    if set(architectures) & set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        return "causal-lm", None, None
    raise UserError(f"bad value {name!r} for RUN_OR_MODEL: its config.json names the model class "
                    f"{', '.join(architectures) or 'none'}, neither a sequence classifier nor a causal LM; evaluate a "
                    "fine-tuned run, its checkpoints/final, or a classifier / causal-LM folder")


def _folder_subject(name: str, source: str) -> Subject:
    """The Subject of a model, PEFT adapter or SIFT delta folder (or a named asset / hub id)."""
    from tunescope.models.checkpoint_check import read_base_config
    from tunescope.models.sparse_delta import is_delta_folder

    folder = Path(source)
    base_config = read_base_config(folder) if folder.is_dir() else None  # validated: it names its base model
    if base_config is None:
        task, names, count = _full_model(name, source)
        return Subject(source=name, kind="model", task=task, model_source=source, label_names=names,
                       num_labels=count)
    config_file = "sift_config.json" if is_delta_folder(folder) else "adapter_config.json"
    task = _task_of_type(base_config.get("task_type"), str(folder / config_file))
    names = base_config.get("label_names")  # a SIFT delta records them
    export = folder / "tunescope_export.json"  # the SHiRA export of a SIFT run records them too
    if names is None and export.is_file():
        names = json.loads(export.read_text()).get("label_names")
    count = len(names) if names else None
    if count is None and task == "classification" and config_file == "adapter_config.json":
        count = _adapter_head_rows(folder, list(base_config.get("modules_to_save") or []))
    return Subject(source=name, kind="sift-delta" if config_file == "sift_config.json" else "adapter",
                   task=task, model_source=source, base_model=base_config["base_model_name_or_path"],
                   label_names=_named(names), num_labels=count)


def _run_subject(name: str, rd: RunDir) -> Subject:
    """The Subject of a finished finetune / sft run directory: its checkpoints/final, config and labels."""
    results = rd.read_results()
    command = results.get("command")
    if command not in RUN_COMMANDS:
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: it is a `{command}` run directory, which holds no "
                        f"single trained model; expected a run of {' or '.join(RUN_COMMANDS)} (e.g. a sub-run of a "
                        "compare run), a model folder or an adapter folder")
    if not rd.final.is_dir():
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: the run has no checkpoints/final (its trained model); "
                        "expected a finished run directory")
    saved = rd.saved_config()
    if saved is None:
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: results.json without config.yaml; expected a finished "
                        "run directory")
    # The command says the task: an adapter's own task_type is not trusted here (early SFT runs saved SEQ_CLS).
    config_class, task = RUN_COMMANDS[command]
    names, count = _named(results.get("label_names")), None
    if task == "classification" and names is None:  # a run that did not record its labels: what the model holds
        inner = _folder_subject(str(rd.final), str(rd.final))
        names, count = inner.label_names, inner.num_labels
    return Subject(source=name, kind="run", task=task, model_source=str(rd.final),
                   config=dataclasses.asdict(build_config(config_class, saved)), base_model=saved.get("model"),
                   label_names=names, num_labels=len(names) if names else count,
                   run={"command": command, "strategy": saved.get("strategy"), "model": saved.get("model"),
                        "data": saved.get("data")})


def resolve_subject(name: str) -> Subject:
    """What `name` is: a finished run directory, a model / adapter / SIFT delta folder, or a model name; UserError
    (naming it and what is accepted) for anything else."""
    from tunescope.models.load import resolve_model_source

    path = Path(name).expanduser()
    if not path.exists() and (path.suffix or name.startswith((".", "/", "~"))):
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: it does not exist; expected a finished run "
                        "directory, a model folder, an adapter folder or a model name")
    rd = RunDir(path)
    if path.is_dir() and rd.has_results():
        return _run_subject(name, rd)
    if path.is_dir() and rd.config_file.is_file():
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: the run has no results.json (unfinished or "
                        "interrupted); finish or resume it first, or pass its checkpoints/final")
    if path.is_file():
        raise UserError(f"bad value {name!r} for RUN_OR_MODEL: it is a file; expected a finished run directory, a "
                        "model folder, an adapter folder or a model name")
    if path.is_dir():
        from tunescope.models.load import WEIGHT_FILES

        if not any((path / f).is_file() for f in WEIGHT_FILES) and not any(path.glob("model-*.safetensors")):
            found = ", ".join(sorted(p.name for p in path.iterdir())[:6]) or "nothing"
            raise UserError(f"bad value {name!r} for RUN_OR_MODEL: neither a finished run directory (results.json) "
                            "nor a model or adapter folder (model.safetensors, adapter_model.safetensors or "
                            f"sift_delta.safetensors); it contains: {found}")
    return _folder_subject(name, resolve_model_source(name))


# ---- the data -------------------------------------------------------------------------------------------------

def _same_data(a: str | None, b: str | None) -> bool:
    """Do two --data values name the same data (the same string, or the same local file)?"""
    if a is None or b is None:
        return False
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.is_file() and pb.is_file() and pa.resolve() == pb.resolve()


def _refuse_other_kind(subject: Subject, data: str) -> None:
    """A named data asset of another kind than the subject's task reads (quartz for a classifier, ...)."""
    from tunescope.assets import ASSETS, asset_names

    if data not in asset_names():
        return
    kind, wanted = ASSETS.get(data).kind, DATA_KINDS[subject.task]
    if kind != wanted:
        raise UserError(f"bad value {data!r} for --data: it is the named {kind} asset, and {subject.source!r} is a "
                        f"{_describe_task(subject.task)}; expected {wanted} data: {', '.join(asset_names(wanted))}, "
                        f"or a local file ({_FORMATS[subject.task]})")


def _describe_task(task: str) -> str:
    return "classifier" if task == "classification" else "causal LM"


def _loads(load, *args, **kwargs) -> Any | None:
    """`load(...)`, or None when it refuses the data."""
    try:
        return load(*args, **kwargs)
    except UserError:
        return None


def _mismatch(subject: Subject, data: str, kind: str) -> UserError:
    return UserError(f"bad value {data!r} for --data: it holds {kind} data, and {subject.source!r} is a "
                     f"{_describe_task(subject.task)}; expected {_FORMATS[subject.task]}")


def _classification_data(subject: Subject, config: Any):
    """X as classification data (the run's seeded split); SFT data is refused as such."""
    from tunescope.data import load_classification
    from tunescope.data.sft import load_sft

    try:
        return load_classification(config.data, text_column=config.text_column, label_column=config.label_column,
                                   seed=config.seed, limit=config.limit)
    except UserError:
        sft = _loads(load_sft, config.data, seed=config.seed)
        if sft is not None and sft.format != "text":  # plain text is what a label-less table also reads as
            raise _mismatch(subject, config.data, f"SFT ({sft.format})") from None
        raise


def _check_sft_data(subject: Subject, config: Any) -> None:
    """X reads as SFT data; a table that only reads as plain text but has a label column is classification data."""
    from tunescope.data import load_classification
    from tunescope.data.sft import load_sft

    sft = load_sft(config.data, text_column=config.text_column, seed=config.seed, limit=config.limit)
    if sft.format == "text" and config.text_column is None and _loads(load_classification, config.data) is not None:
        raise _mismatch(subject, config.data, "classification (text + label columns)")


def _check_labels(subject: Subject, data_name: str, names: list[str]) -> None:
    """The classifier's labels (number; names where the model records them) must be X's, in the same order."""
    count_differs = subject.num_labels is not None and subject.num_labels != len(names)
    names_differ = subject.label_names is not None and subject.label_names != list(names)
    if count_differs or names_differ:
        ours = (f"{len(subject.label_names)} labels {subject.label_names}" if subject.label_names
                else f"{subject.num_labels} labels")
        raise UserError(f"label mismatch: {subject.source!r} predicts {ours} and data {data_name!r} has "
                        f"{len(names)} labels {list(names)}; expected data with the same labels in the same order")


# ---- evaluation -----------------------------------------------------------------------------------------------

def _as_one_split(loaded):
    """`loaded` with train, validation and test concatenated into its test split (split "all"); the SFT rows'
    `row` (an index into the data split) shifted by the sizes of the splits before them."""
    from datasets import concatenate_datasets

    order = ("train", "validation", "test")
    parts, offset = [], 0
    for split in order:
        part = loaded.tokenized[split]
        if "row" in part.column_names:
            rows = [r + offset for r in part["row"]]
            part = part.remove_columns("row").add_column("row", rows)
        parts.append(part)
        offset += len(loaded.data.split(split))
    data = dataclasses.replace(loaded.data, test=concatenate_datasets([loaded.data.split(s) for s in order]))
    return dataclasses.replace(loaded, data=data, tokenized={**loaded.tokenized, "test": concatenate_datasets(parts)})


def _classification(subject: Subject, config: FinetuneConfig, split: str) -> dict:
    """accuracy, nll, ece, mce, brier of the classifier on `split` of X, and the majority-class baseline."""
    from tunescope.diagnostics.calibration import calibration_metrics

    task = TASKS.get("classification")
    data = _classification_data(subject, config)
    _check_labels(subject, config.data, data.label_names)  # before any weights load
    loaded = task.load(config, subject.model_source)  # the same seeded path as training (reads X again: cheap)
    if split == "all":
        loaded = _as_one_split(loaded)
    evaluation = task.evaluate(loaded.model, loaded, "test" if split == "all" else split, config.eval_batch_size)
    logits, labels = evaluation.arrays["logits"], evaluation.arrays["labels"]
    calibration = calibration_metrics(logits, labels, n_bins=config.calibration_bins)
    checks = task.sanity_checks(loaded, evaluation, split)  # `split` names the evaluated rows in a warning
    metrics = {**evaluation.metrics, **{k: calibration[k] for k in ("ece", "mce", "brier")},
               "examples": len(labels)}
    return {"eval": metrics, "baseline": {"kind": "majority-class", **checks["baseline"]},
            "warnings": checks["warnings"], "label_names": data.label_names, "data_sizes": data.sizes(),
            "calibration_bins": config.calibration_bins}


def _causal_lm(subject: Subject, config: SFTConfig, split: str, base: bool) -> dict:
    """Token metrics (and task accuracy with choices) of the model and of its base model on `split` of X."""
    from tunescope.models.load import checkpoint_base_source
    from tunescope.tasks.causal_lm import load_lm_checkpoint

    task = TASKS.get("causal-lm")
    _check_sft_data(subject, config)
    loaded = task.load(config, subject.model_source)
    if split == "all":
        loaded, split = _as_one_split(loaded), "test"
    out = {"eval": task.evaluate(loaded.model, loaded, split, config.eval_batch_size).metrics,
           "data_sizes": loaded.data.sizes(), "preparation": loaded.preparation}
    if not base or subject.base_model is None:
        out["baseline"] = None
        out["baseline_note"] = ("not asked (--no-base)" if not base else
                                "a full model folder names no base model")
        return out
    loaded.model = None  # the fine-tuned model is done with; only one model in memory at a time
    # The base on the same tokenised rows (the checkpoint's tokenizer: the base's, with the chat template trained
    # with). A base recorded by its public hub id loads the named asset it came from, offline.
    base_model, _ = load_lm_checkpoint(checkpoint_base_source(subject.base_model))
    out["baseline"] = {"kind": "base-model", "model": subject.base_model,
                       **task.evaluate(base_model, loaded, split, config.eval_batch_size).metrics}
    return out


def _config(subject: Subject, data: str, options: dict) -> Any:
    """The task config: the run's saved one (or the defaults) with X as data and the given options. The run's
    columns and --limit carry over only when X is the run's own data (so that its test split comes back)."""
    values: dict[str, Any] = {"data": data}
    if not subject.config:
        values["model"] = subject.model_source
    elif not _same_data(data, subject.config.get("data")):
        values.update(text_column=None, label_column=None, limit=None)
    values.update({k: v for k, v in options.items() if v is not None})
    return build_config(CONFIG_OF_TASK[subject.task], subject.config, values)


def evaluate_run(source: str | Path, data: str, *, split: str = "test", limit: int | None = None,
                 batch_size: int | None = None, max_length: int | None = None, seed: int | None = None,
                 text_column: str | None = None, label_column: str | None = None, base: bool = True,
                 out: str | Path | None = None) -> dict:
    """Evaluate `source` (a finished run directory, a model / adapter / SIFT delta folder, or a model name) on
    `split` of `data`, beside its baseline (module docstring); returns the evaluation dict.

    Options left None take the run's value (max_length, seed, eval batch size; limit and columns only when `data`
    is the run's own data), else the task config's default. `base=False` skips a causal LM's base-model
    evaluation. With `out`, writes OUT/evaluation.json atomically (replacing an earlier one); nothing else is
    written.
    """
    check(split in SPLITS, "--split", split, " / ".join(SPLITS))
    for flag, value in (("--limit", limit), ("--batch-size", batch_size)):
        check(value is None or value >= 1, flag, value, "a positive integer")
    start, origin = time.perf_counter(), provenance()
    subject = resolve_subject(str(source))
    _refuse_other_kind(subject, data)
    config = _config(subject, data, {"limit": limit, "eval_batch_size": batch_size, "max_length": max_length,
                                     "seed": seed, "text_column": text_column, "label_column": label_column})
    if subject.task == "classification":
        found = _classification(subject, config, split)
    else:
        found = _causal_lm(subject, config, split, base)
    evaluation = {"command": "evaluate", "source": subject.source, "kind": subject.kind, "task": subject.task,
                  "model": subject.model_source, "base_model": subject.base_model, "run": subject.run,
                  "data": data, "split": split, "seed": config.seed, "limit": config.limit,
                  "max_length": config.max_length, "batch_size": config.eval_batch_size, **found, **origin,
                  "wall_seconds": round(time.perf_counter() - start, 2)}
    evaluation.setdefault("warnings", [])
    if out is not None:
        atomic_write_json(Path(out) / EVALUATION_FILE, evaluation)
    return evaluation

