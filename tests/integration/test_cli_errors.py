"""Bad input: exit code 2 and ONE line on stderr naming the value and what is accepted, never a traceback.

One table, one row per bad input, run through the real CLI in-process (`main([...])`). Every row fails before any
training: bad data stops `load_classification` before a model is loaded, bad values stop the config check, and the
few rows that load a model load the tiny BERT of `tiny_model_dir`. The whole file runs in well under a minute.

Placeholders in argv: `{tmp}` (this test's folder), `{toy}` (a valid toy csv), `{bert}` (a tiny BERT checkpoint),
`@NAME` (tmp_path/NAME, written from FILES below, or built by BUILDERS for the model and run-folder rows). Rows
marked `FAILS_TODAY` are bad inputs that do not yet give exactly one clean line, because of code outside the data /
asset modules; the mark is strict, so a row that starts passing must lose it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest

from tests.unit._asset_helpers import (  # noqa: F401
    BIG_FILE,
    TOY_ASSET,
    overwrite,
    read_only,
    toy_home,
)
from tunescope.assets import fetch
from tunescope.cli import main


def _rows(make_row: Callable[[int], dict | list], n: int = 30) -> str:
    """JSON lines of `n` records made by `make_row(i)`."""
    return "".join(json.dumps(make_row(i)) + "\n" for i in range(n))


def _csv(labels: list, texts: list | None = None) -> str:
    texts = texts if texts is not None else [f"t {i}" for i in range(len(labels))]
    return "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(texts, labels))


# Small bad (and a few good) input files, written into each test's tmp_path.
FILES: dict[str, str] = {
    # classification data
    "three.csv": _csv([0, 1, 0]),
    "five.csv": _csv([0, 1, 0, 1, 0]),
    "mixed.jsonl": _rows(lambda i: {"text": f"t {i}", "label": [0, "pos"][i % 2]}),
    "mixed.csv": _csv(["0", "1", "pos"] * 10),
    "bool-int-str.jsonl": _rows(lambda i: {"text": f"t {i}", "label": [True, 1, "x"][i % 3]}),
    "float.csv": _csv([0.5, 1.5, 2.25] * 10),
    "list-labels.jsonl": _rows(lambda i: {"text": f"t {i}", "label": [i % 2, 1]}),
    "dict-labels.jsonl": _rows(lambda i: {"text": f"t {i}", "label": {"y": i % 2}}),
    "list-texts.jsonl": _rows(lambda i: {"text": [f"t {i}"], "label": i % 2}),
    "empty-texts.jsonl": _rows(lambda i: {"text": "", "label": i % 2}),
    "blank-texts.csv": _csv([0, 1] * 15, ["   "] * 30),
    "no-labels.jsonl": _rows(lambda i: {"text": f"t {i}", "label": None}),
    "one-class.csv": _csv(["pos"] * 30),
    "zero-bytes.csv": "",
    "blank-lines.csv": "\n\n\n",
    "header-only.csv": "text,label\n",
    "imbalanced.jsonl": _rows(lambda i: {"text": f"t {i}", "label": "a" if i else "b"}, n=8),
    "broken.jsonl": '{"text": "a", "label": 0}\n{"text": \n',
    "sheet.xlsx": "not really a spreadsheet",
    "folder/readme.txt": "a folder is not a data file",
    # corpora
    "one-doc.txt": "a single document\n\n",
    "list-docs.jsonl": _rows(lambda i: {"text": [f"doc {i}"]}, n=10),
    "corpus.txt": "".join(f"document number {i} with some words\n" for i in range(40)),
    # configs and run folders
    "typo.yaml": "epoch: 3\n",
    "broken.yaml": "epochs: [1, 2\n",
    "list.yaml": "- epochs\n- 3\n",
    "ckpt/config.json": "{}",
    "fake-run/config.yaml": "model: nowhere\n",
}

FAILS_TODAY = "fails today outside the data/asset modules (see the comment on the row)"


def fails_today(reason: str):
    """Mark a row that does not yet give one clean error line because of code outside data/ and assets/."""
    return pytest.mark.xfail(strict=True, reason=f"{FAILS_TODAY}: {reason}")


def row(argv: str, fragment: str, *, id: str, marks=()):
    """One table row: the command line (split on spaces), a substring of the error line, a test id."""
    return pytest.param(argv.split(), fragment, id=id, marks=marks)


TABLE = [
    # --- classification data: the fixes of issue 12 (data/classification.py, data/sources.py) ------------------
    row("finetune --model {bert} --data @three.csv", "'{tmp}/three.csv' has 3 usable rows", id="data-3-rows"),
    row("finetune --model {bert} --data @five.csv", "split needs at least 6 rows", id="data-5-rows"),
    row("finetune --model {bert} --data @mixed.jsonl", "mix integers and strings, e.g. 0 and 'pos'",
        id="data-labels-int-and-str-json"),
    row("finetune --model {bert} --data @mixed.csv", "mix integers and strings, e.g. '0' and 'pos'",
        id="data-labels-int-and-str-csv"),
    row("finetune --model {bert} --data @bool-int-str.jsonl", "mix booleans, integers and strings",
        id="data-labels-three-kinds"),
    row("finetune --model {bert} --data @float.csv", "label 0.5 in '{tmp}/float.csv' is neither an integer nor a "
        "string", id="data-labels-fractional"),
    row("finetune --model {bert} --data @list-labels.jsonl", "label column 'label' of '{tmp}/list-labels.jsonl' "
        "holds a list in row 1 ([0, 1])", id="data-labels-list"),
    row("finetune --model {bert} --data @dict-labels.jsonl", "holds a dict in row 1 ({'y': 0}); labels must be "
        "integers or strings", id="data-labels-dict"),
    row("finetune --model {bert} --data @list-texts.jsonl", "text column 'text' of '{tmp}/list-texts.jsonl' holds a "
        "list in row 1", id="data-texts-list"),
    row("finetune --model {bert} --data @empty-texts.jsonl", "text column 'text' of '{tmp}/empty-texts.jsonl' is "
        "empty: all 30 rows have a missing or blank text", id="data-texts-empty"),
    row("finetune --model {bert} --data @blank-texts.csv", "is empty: all 30 rows have a missing or blank text; pass "
        "--text-column", id="data-texts-blank"),
    row("finetune --model {bert} --data @no-labels.jsonl", "label column 'label' of '{tmp}/no-labels.jsonl' is "
        "empty", id="data-labels-missing"),
    row("finetune --model {bert} --data @one-class.csv", "single class ('pos') in all 30 labelled rows; "
        "classification needs at least 2 classes", id="data-one-class"),
    row("finetune --model {bert} --data @zero-bytes.csv", "data file '{tmp}/zero-bytes.csv' is empty (0 bytes)",
        id="data-file-zero-bytes"),
    row("finetune --model {bert} --data @blank-lines.csv", "holds no table (only blank lines)",
        id="data-file-blank-lines"),
    row("finetune --model {bert} --data @header-only.csv", "is empty: it has no rows (columns: text, label)",
        id="data-file-header-only"),
    row("finetune --model {bert} --data @imbalanced.jsonl --seed 6", "with seed 6 its train split of 6 rows holds "
        "the single class 'a'", id="data-train-split-one-class"),
    row("finetune --model {bert} --data @broken.jsonl", "could not read data file '{tmp}/broken.jsonl'",
        id="data-file-broken-json"),
    row("finetune --model {bert} --data @sheet.xlsx", "unsupported data file type '.xlsx'", id="data-file-xlsx"),
    row("finetune --model {bert} --data @folder", "no label column in {tmp}/folder (looked for label, labels, "
        "category, sentiment); columns: text", id="data-file-folder"),  # datasets reads the folder's .txt file
    row("finetune --model {bert} --data @nope.csv", "data file '{tmp}/nope.csv' does not exist",
        id="data-file-missing"),
    row("finetune --model {bert} --data {toy} --text-column review", "text column 'review' not found",
        id="data-text-column-missing"),
    row("finetune --model {bert} --data {toy} --label-column lable", "Did you mean 'label'",
        id="data-label-column-typo"),
    row("finetune --model {bert} --data roten_tomatoes", "unknown dataset 'roten_tomatoes'", id="data-unknown-name"),
    row("finetune --model {bert} --data rotten_tomatoes --text-column review", "do not apply to the named data set",
        id="data-named-with-columns"),
    row("finetune --model {bert} --data {toy} --limit 0", "bad value 0 for limit: expected a positive integer",
        id="data-limit-zero"),
    # the same data checks reached through the other commands that load classification data
    row("diagnose --model {bert} --data @three.csv", "needs at least 6 rows", id="diagnose-data-3-rows"),
    row("sparsity --model {bert} --data @mixed.jsonl", "mix integers and strings", id="sparsity-data-mixed-labels"),
    row("ntk --model {bert} --data @list-labels.jsonl", "holds a list in row 1", id="ntk-data-list-labels"),
    row("landscape --model {bert} --data @one-class.csv", "single class ('pos')", id="landscape-data-one-class"),
    row("compare --strategies head --model {bert} --data @empty-texts.jsonl", "is empty: all 30 rows",
        id="compare-data-empty-texts"),
    # corpora (data/corpus.py)
    row("pretrain --data @one-doc.txt", "has 1 non-empty documents in column 'text'; need at least 2",
        id="pretrain-corpus-one-doc"),
    row("pretrain --data @list-docs.jsonl", "text column 'text' of '{tmp}/list-docs.jsonl' holds a list in row 1",
        id="pretrain-corpus-list-docs"),
    row("pretrain --data @zero-bytes.csv", "is empty (0 bytes)", id="pretrain-corpus-zero-bytes"),
    row("jump --model {bert} --data @nope.txt", "data file '{tmp}/nope.txt' does not exist", id="jump-corpus-missing"),

    # --- models and names (already clean) -----------------------------------------------------------------------
    row("finetune --model minilm-l7 --data {toy}", "unknown model 'minilm-l7'", id="model-unknown-name"),
    row("finetune --model rotten_tomatoes --data {toy}", "is a data asset, not a model", id="model-is-data-asset"),
    row("finetune --model @ckpt --data {toy}", "holds no weights", id="model-folder-without-weights"),
    row("finetune --model @nope/model --data {toy}", "does not exist", id="model-path-missing"),
    row("diagnose --model minilm-l7 --data {toy}", "Did you mean 'minilm-l6'", id="diagnose-model-unknown"),
    row("jump --model minilm-l7 --data @corpus.txt", "unknown model 'minilm-l7'", id="jump-model-unknown"),
    row("assets fetch nope", "unknown asset 'nope'", id="assets-unknown"),
    row("assets fetch minilm", "Did you mean 'minilm-l6'", id="assets-did-you-mean"),
    row("bench nope", "unknown benchmark 'nope'", id="bench-unknown"),

    # --- configs, overrides, numbers -----------------------------------------------------------------------------
    row("finetune --strategy lorra", "unknown strategy 'lorra'", id="finetune-strategy-typo"),
    row("finetune --config @typo.yaml", "unknown config key 'epoch'", id="config-key-typo"),
    row("run --config @nope.yaml", "does not exist", id="config-file-missing"),
    row("finetune epochs=-1", "bad value -1.0 for epochs: expected a positive number", id="finetune-epochs-negative"),
    row("finetune batch_size=many", "bad value 'many' for batch_size: expected an integer", id="finetune-batch-text"),
    row("finetune lr_scheduler=fancy", "bad value 'fancy' for lr_scheduler", id="finetune-scheduler-unknown"),
    row("finetune --epochs abc", "bad value 'abc' for epochs: expected a number", id="finetune-epochs-text"),
    row("finetune --lr -1", "bad value -1.0 for learning_rate", id="finetune-lr-negative"),
    row("finetune --rank 0", "bad value 0 for lora_rank", id="finetune-rank-zero"),
    row("finetune --strategy sift --sift-rate 2", "bad value 2.0 for sift_rate", id="finetune-sift-rate"),
    row("finetune --resume", "--resume needs --out", id="finetune-resume-without-out"),
    row("finetune --resume --out {tmp}", "nothing to resume", id="finetune-resume-nothing"),
    row("run --strategy nope", "unknown strategy 'nope'", id="run-strategy-unknown"),
    row("run --limit 0", "bad value 0 for limit", id="run-limit-zero"),
    row("diagnose --model {bert} --data {toy} --probe-batches 0", "bad value 0 for probe_batches",
        id="diagnose-probe-batches-zero"),
    row("diagnose --model {bert} --data {toy} --width abc", "bad value 'abc' for inflection_width",
        id="diagnose-width-text"),
    row("sparsity --model {bert} --data {toy} --fractions 2", "expected numbers in (0, 1]", id="sparsity-fraction-2"),
    row("sparsity --model {bert} --data {toy} --batches -1", "bad value -1 for batches", id="sparsity-batches"),
    row("ntk --model {bert} --data {toy} --strategy nope", "unknown strategy 'nope'", id="ntk-strategy-unknown"),
    row("ntk --model {bert} --data {toy} --samples 0", "bad value 0 for samples: expected an integer >= 2",
        id="ntk-samples-zero"),
    row("ntk --run @nowhere", "expected a run directory with config.yaml", id="ntk-run-missing"),
    row("landscape --model {bert} --data {toy} --directions diagonal", "bad value 'diagonal' for directions",
        id="landscape-direction-unknown"),
    row("landscape --model {bert} --data {toy} --tau -1", "bad value -1.0 for tau", id="landscape-tau-negative"),
    row("landscape --model {bert} --data {toy} --normalization nope", "bad value 'nope' for normalization",
        id="landscape-normalization-unknown"),
    row("landscape --model {bert} --data {toy} --num-directions 0", "bad value 0 for num_directions",
        id="landscape-directions-zero"),
    row("jump --model {bert} --data @corpus.txt --batch-size 0", "bad value 0 for batch_size", id="jump-batch-zero"),
    row("compare --strategies lora,nope --data {toy}", "unknown strategy 'nope'", id="compare-strategy-unknown"),
    row("compare --strategies lora --seeds a,b --data {toy}", "bad value 'a,b' for --seeds", id="compare-seeds-text"),
    row("transfer --strategies nope", "unknown strategy 'nope'", id="transfer-strategy-unknown"),
    row("transfer --regimes sideways", "bad value 'sideways' for regimes", id="transfer-regime-unknown"),
    row("transfer --source roten_tomatoes", "unknown dataset 'roten_tomatoes'", id="transfer-source-unknown"),
    row("pretrain --preset huge", "bad value 'huge' for preset", id="pretrain-preset-unknown"),
    row("pretrain --jreg -1", "bad value -1.0 for jreg", id="pretrain-jreg-negative"),
    row("pretrain --jreg-form nope", "bad value 'nope' for jreg_form", id="pretrain-jreg-form-unknown"),
    row("pretrain --steps 0", "bad value 0 for steps", id="pretrain-steps-zero"),
    row("pretrain --resume", "--resume needs the run directory", id="pretrain-resume-without-out"),
    row("landscape --model {bert} --data {toy} --rtol 0", "rtol", id="landscape-rtol-zero"),
    row("landscape --model {bert} --data {toy} --num-worst -1", "num_worst", id="landscape-num-worst-negative"),
    row("ntk --model {bert} --data {toy} --sketch-dim 0", "sketch_dim", id="ntk-sketch-dim-zero"),
    row("compare --strategies lora --data {toy} --ntk-samples -1", "ntk_samples", id="compare-ntk-samples"),
    row("transfer --seeds x", "bad value 'x' for seeds", id="transfer-seeds-text"),
    row("pretrain --vocab-size 0", "vocab_size", id="pretrain-vocab-zero"),
    row("pretrain --tokenizer @nowhere", "nowhere", id="pretrain-tokenizer-missing"),
    row("finetune --max-length 0", "max_length", id="finetune-max-length-zero"),
    row("finetune --batch-size 0", "bad value 0 for batch_size", id="finetune-batch-zero"),
    row("finetune lora_dropout=2", "lora_dropout", id="finetune-dropout-2"),
    row("finetune foo=1", "unknown config key 'foo'", id="finetune-override-unknown"),
    row("finetune epochs", "epochs", id="finetune-override-without-value"),
    row("finetune --config @broken.yaml", "broken.yaml", id="config-broken-yaml"),
    row("finetune --config @list.yaml", "list.yaml", id="config-not-a-mapping"),
    row("bench sift batch_size=abc", "bad benchmark option", id="bench-sift-option-text"),
    row("calibrate @fake-run", "expected a finished run directory", id="calibrate-unfinished-run"),

    # --- run directories -----------------------------------------------------------------------------------------
    row("report {tmp}", "not a finished tunescope run", id="report-not-a-run"),
    row("report @nowhere", "does not exist", id="report-missing"),
    row("calibrate @nowhere", "expected a finished run directory with results.json", id="calibrate-missing"),
    row("calibrate {toy}", "expected a finished run directory", id="calibrate-file"),

    # --- fail today, outside data/ and assets/ ---------------------------------------------------------------------
    # argparse: a usage block of several lines precedes the error line.
    row("calibrate {tmp} --bins abc", "argument --bins: invalid int value: 'abc'", id="argparse-bins-text"),
    row("nosuchcommand", "invalid choice: 'nosuchcommand'", id="argparse-unknown-command"),
    row("assets nope", "invalid choice: 'nope'", id="argparse-assets-subcommand"),
    row("", "no COMMAND given; expected one of: run, plan, finetune", id="no-command"),
    # --- plan / run options ------------------------------------------------------------------------------------
    row("plan --model {bert} --data {toy} --budget-params 150%", "bad value '150%' for budget_params",
        id="plan-budget-over-100pct"),
    row("plan --model {bert} --data {toy} --budget-params lots", "bad value 'lots' for budget_params",
        id="plan-budget-text"),
    row("run --model {bert} --data {toy} --budget-minutes 0", "bad value 0.0 for budget_minutes",
        id="run-budget-minutes-zero"),
    row("plan --model {bert} --data {toy} --plan-mode guess", "bad value 'guess' for plan_mode",
        id="plan-mode-unknown"),
    row("plan --model {bert} --data {toy} --candidates lora,magic", "bad value ['lora', 'magic'] for candidates",
        id="plan-candidates-unknown"),
    # Model-dependent values, checked on the weightless model before any data or weights load
    # (experiments/preflight.py); they used to fail after loading, behind progress bars.
    row("finetune --model {bert} --data {toy} --strategy lora-inflection --layers 99",
        "bad value [99] for layers: expected block indices in 0..3", id="finetune-layers-out-of-range"),
    row("diagnose --model {bert} --data {toy} --limit 8 --probe-batches 1 --against @nowhere",
        "model path '{tmp}/nowhere' does not exist",
        id="diagnose-against-missing"),
    row("sparsity --model {bert} --data {toy} --targets nope", "bad value 'nope' for targets",
        id="sparsity-targets-unknown"),
    row("landscape --model {bert} --data {toy} --scope nope", "bad value 'nope' for --scope",
        id="landscape-scope-unknown"),
    # bench options are parsed with a bare int(): ValueError traceback, exit 1 (bench/diagnostics.py, bench/jump.py,
    # bench/landscape.py; bench/sift.py already turns it into a UserError, row bench-sift-option-text).
    row("bench diagnostics batch_size=abc", "batch_size", id="bench-diagnostics-option-text"),
    row("bench diagnostics repeats=abc", "repeats", id="bench-diagnostics-repeats-text"),
    row("bench jump batch_size=abc", "batch_size", id="bench-jump-option-text"),
    row("bench landscape directions=abc", "directions", id="bench-landscape-option-text"),

    # --- issue 12, models and outputs: checked before any data or weights load (models/load.py,
    # models/checkpoint_check.py, experiments/preflight.py, cli/__init__.py, bench/__init__.py, calibrate, report).
    # `@NAME` of BUILDERS: a folder made from the tiny BERT and then damaged (see BUILDERS below).
    row("finetune --model @st-truncated --data {toy}", "bad file '{tmp}/st-truncated/model.safetensors': "
        "truncated: its tensors need", id="model-safetensors-truncated"),
    row("finetune --model @st-junk --data {toy}", "'{tmp}/st-junk/model.safetensors': its header length field says",
        id="model-safetensors-not-safetensors"),
    row("finetune --model @st-header-cut --data {toy}", "its 128-byte header is not valid JSON",
        id="model-safetensors-header-cut"),
    row("diagnose --model {bert} --data {toy} --against @st-truncated", "bad value '{tmp}/st-truncated' for "
        "--against: bad file '{tmp}/st-truncated/model.safetensors': truncated", id="diagnose-against-truncated"),
    row("finetune --model @pickle-model --data {toy}", "model folder '{tmp}/pickle-model' holds only a pickle "
        "checkpoint (pytorch_model.bin), which tunescope does not load because unpickling can run arbitrary code",
        id="model-pickle-only"),
    row("diagnose --model @pickle-model --data {toy}", "save_pretrained(FOLDER, safe_serialization=True)",
        id="diagnose-model-pickle-only"),
    row("finetune --model @pickle-adapter --data {toy}", "adapter folder '{tmp}/pickle-adapter' holds only a pickle "
        "checkpoint (adapter_model.bin)", id="model-pickle-adapter"),
    row("finetune --model @adapter-json-cut --data {toy}", "bad file '{tmp}/adapter-json-cut/adapter_config.json': "
        "not readable JSON", id="model-adapter-config-corrupt"),
    row("finetune --model @adapter-no-base --data {toy}", "base_model_name_or_path is None",
        id="model-adapter-config-without-base"),
    row("finetune --model @config-json-cut --data {toy}", "bad file '{tmp}/config-json-cut/config.json'",
        id="model-config-json-corrupt"),
    row("finetune --model @shard-missing --data {toy}", "it names shard 'model-00002-of-00002.safetensors'",
        id="model-shard-missing"),
    row("finetune --model @remote-code --data {toy}", "ships its own code (config.json auto_map: AutoConfig, "
        "AutoModelForSequenceClassification), which tunescope does not run unless you pass --trust-remote-code",
        id="model-remote-code"),
    row("jump --model @adapter --data @corpus.txt", "model '{tmp}/adapter' is a PEFT adapter of base model '{bert}', "
        "not a full model: pass the base model", id="jump-model-is-adapter"),
    row("landscape --model @lm-adapter --data {toy}", "is a PEFT adapter of base model '{bert}', not a full model",
        id="landscape-model-is-lm-adapter"),
    row("finetune --model @lm-adapter --data {toy}", "is a PEFT adapter of task type 'CAUSAL_LM'",
        id="finetune-model-is-lm-adapter"),
    # model-dependent options, checked on the weightless model (experiments/preflight.py)
    row("ntk --model {bert} --data {toy} --strategy lora --layers 1,9", "bad value [1, 9] for layers: expected block "
        "indices in 0..3", id="ntk-layers-out-of-range"),
    row("ntk --model {bert} --data {toy} --strategy lora --lora-targets nope", "bad value 'nope' for lora_targets",
        id="ntk-lora-targets-unknown"),
    row("ntk --model {bert} --data {toy} --strategy sift --sift-targets nope", "bad value 'nope' for sift_targets",
        id="ntk-sift-targets-unknown"),
    row("sparsity --model {bert} --data {toy} --targets query,nope", "bad value 'nope' for targets: no module",
        id="sparsity-targets-one-unknown"),
    row("landscape --model {bert} --data {toy} --scope layers:2-9", "bad value 'layers:2-9' for --scope",
        id="landscape-scope-layers-out-of-range"),
    row("landscape --model {bert} --data {toy} --scope adapters", "bad value 'adapters' for --scope",
        id="landscape-scope-adapters-without-adapter"),
    row("landscape --model {bert} --data {toy} --scope sparse", "bad value 'sparse' for --scope",
        id="landscape-scope-sparse-without-sift-run"),
    row("landscape --model {bert} --data {toy} --directions sft --base @nowhere", "bad value '{tmp}/nowhere' for "
        "--base: model path '{tmp}/nowhere' does not exist", id="landscape-base-missing"),
    row("finetune --model {bert} --data {toy} --strategy lora --lora-targets nope", "bad value 'nope' for "
        "lora_targets", id="finetune-lora-targets-unknown"),
    row("finetune --model {bert} --data {toy} --strategy sift --sift-targets nope", "bad value 'nope' for "
        "sift_targets", id="finetune-sift-targets-unknown"),
    # argparse: one line (cli/__init__.py)
    row("finetune --no-such-flag", "unrecognized arguments: --no-such-flag", id="argparse-unknown-flag"),
    row("diagnose --metrics nope", "argument --metrics", id="argparse-metrics-unknown"),
    row("calibrate", "the following arguments are required: RUN_DIR", id="argparse-missing-positional"),
    # outputs and finished runs
    row("finetune --model {bert} --data {toy} --out @three.csv", "bad value '{tmp}/three.csv' for --out: it is an "
        "existing file", id="out-is-a-file"),
    row("diagnose --model {bert} --data {toy} --out @three.csv/run", "'{tmp}/three.csv' is a file, not a folder",
        id="out-under-a-file"),
    row("calibrate @run-logits-cut", "bad file '{tmp}/run-logits-cut/logits.npz': truncated or corrupt",
        id="calibrate-logits-truncated"),
    row("calibrate @run-logits-junk", "bad file '{tmp}/run-logits-junk/logits.npz': truncated or corrupt",
        id="calibrate-logits-not-npz"),
    row("calibrate @run-logits-no-labels", "expected arrays test_logits and test_labels",
        id="calibrate-logits-incomplete"),
    row("calibrate @run-results-cut", "bad file '{tmp}/run-results-cut/results.json': truncated or corrupt",
        id="calibrate-results-truncated"),
    row("report @run-results-cut", "bad file '{tmp}/run-results-cut/results.json': truncated or corrupt, not readable "
        "JSON", id="report-results-truncated"),
    row("report @run-results-list", "holds a JSON list", id="report-results-not-an-object"),
    row("report @run-config-cut", "bad file '{tmp}/run-config-cut/config.yaml': not readable YAML",
        id="report-config-corrupt"),
    row("finetune --resume --out @lora-run --model {bert} --data {toy} --limit 8 --epochs 7", "bad value 7.0 for "
        "--epochs: the run in '{tmp}/lora-run' was made with epochs 3", id="finetune-resume-other-epochs"),
    row("finetune --resume --out @lora-run --strategy full", "bad value 'full' for --strategy: the run in "
        "'{tmp}/lora-run' was made with strategy 'lora'", id="finetune-resume-other-strategy"),
    # bench options (bench/__init__.py checks them against BENCHMARK_OPTIONS before measuring)
    row("bench diagnostics steps=5", "bad benchmark option 'steps' for `tunescope bench diagnostics`: unknown; "
        "accepted: model=TEXT", id="bench-diagnostics-option-unknown"),
    row("bench sift memory=maybe", "memory='maybe'", id="bench-sift-bool-text"),
    row("bench landscape tau=big", "tau='big'", id="bench-landscape-float-text"),
    row("bench jump nope=1", "bad benchmark option 'nope' for `tunescope bench jump`", id="bench-jump-option-unknown"),
    # --- issue 13: `tunescope evaluate` (experiments/evaluate.py), refused before any weights load ---------------
    row("evaluate @nowhere --data {toy}", "bad value '{tmp}/nowhere' for RUN_OR_MODEL: it does not exist",
        id="evaluate-path-missing"),
    row("evaluate @folder --data {toy}", "neither a finished run directory (results.json) nor a model or adapter "
        "folder", id="evaluate-folder-without-model"),
    row("evaluate {toy} --data {toy}", "for RUN_OR_MODEL: it is a file", id="evaluate-file"),
    row("evaluate @fake-run --data {toy}", "the run has no results.json", id="evaluate-unfinished-run"),
    row("evaluate {bert} --data roten_tomatoes", "unknown dataset 'roten_tomatoes'", id="evaluate-data-unknown"),
    row("evaluate {bert} --data quartz", "it is the named sft asset, and '{bert}' is a classifier",
        id="evaluate-classifier-sft-data"),
    row("evaluate {bert} --data @three.csv", "has 3 usable rows", id="evaluate-data-3-rows"),
    row("evaluate {bert} --data {toy} --limit 0", "bad value 0 for --limit", id="evaluate-limit-zero"),
    row("evaluate {bert} --data {toy} --split dev", "argument --split: invalid choice: 'dev'",
        id="evaluate-split-unknown"),
    row("evaluate {bert}", "the following arguments are required: --data", id="evaluate-data-missing"),
]


def _expand(arg: str, tmp: Path, toy: Path, bert: Path) -> str:
    """Fill the placeholders of one argv item."""
    if arg.startswith("@"):
        return str(tmp / arg[1:])
    return arg.replace("{tmp}", str(tmp)).replace("{toy}", str(toy)).replace("{bert}", str(bert))


def _write_files(tmp: Path) -> None:
    for name, content in FILES.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


# --- issue 12: damaged model folders and run folders, built only for the rows that name them ---------------------


def _tiny_safetensors(path: Path) -> None:
    """A small valid safetensors file (the weights of a stand-in adapter: never read by the rows)."""
    import torch
    from safetensors.torch import save_file

    save_file({"lora_A.weight": torch.zeros(2, 4)}, str(path))


def _bert_copy(dst: Path, bert: Path) -> Path:
    shutil.copytree(bert, dst)
    return dst


def _cut(path: Path, keep: int) -> None:
    """Keep the first `keep` bytes of `path` (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _adapter(dst: Path, config: dict | str) -> None:
    """A PEFT-layout folder: adapter_config.json (a dict, or raw text for a corrupt one) + adapter weights."""
    dst.mkdir()
    (dst / "adapter_config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    _tiny_safetensors(dst / "adapter_model.safetensors")


def _edited_config(dst: Path, bert: Path, **changes) -> None:
    """A copy of the tiny BERT whose config.json gets `changes`."""
    _bert_copy(dst, bert)
    config = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**config, **changes}))


def _pickle_model(dst: Path, bert: Path) -> None:
    _bert_copy(dst, bert)
    (dst / "model.safetensors").unlink()
    (dst / "pytorch_model.bin").write_bytes(b"\x80\x04 not read: a pickle is refused by its name")


def _shard_missing(dst: Path, bert: Path) -> None:
    _bert_copy(dst, bert)
    (dst / "model.safetensors").rename(dst / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                                            "b.weight": "model-00002-of-00002.safetensors"}}
    (dst / "model.safetensors.index.json").write_text(json.dumps(index))


def _run_with(dst: Path, **files: str | bytes) -> None:
    """A finished-looking run folder holding `files` (name -> text or bytes; '_' in a name stands for '.')."""
    dst.mkdir()
    for name, content in files.items():
        target = dst / name.replace("_", ".", 1)
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)


def _npz(**arrays) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _logits() -> bytes:
    import numpy as np

    return _npz(test_logits=np.zeros((40, 2)), test_labels=np.arange(40) % 2)


# name -> fn(folder to create, tiny BERT folder); `@name` in a row's argv builds it in that row's tmp_path.
BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "st-truncated": lambda d, b: _cut(_bert_copy(d, b) / "model.safetensors", -1000),
    "st-junk": lambda d, b: (_bert_copy(d, b) / "model.safetensors").write_bytes(b"not a safetensors file"),
    "st-header-cut": lambda d, b: (_bert_copy(d, b) / "model.safetensors").write_bytes(
        (128).to_bytes(8, "little") + b'{"w": {"dtype": "F32", "shape": [2]' + b" " * 100),
    "pickle-model": _pickle_model,
    "pickle-adapter": lambda d, b: (_adapter(d, {"base_model_name_or_path": str(b), "peft_type": "LORA"}),
                                    (d / "adapter_model.safetensors").rename(d / "adapter_model.bin")),
    "adapter-json-cut": lambda d, b: _adapter(d, '{"base_model_name_or_path": "' + str(b)),
    "adapter-no-base": lambda d, b: _adapter(d, {"peft_type": "LORA", "task_type": "SEQ_CLS"}),
    "adapter": lambda d, b: _adapter(d, {"base_model_name_or_path": str(b), "peft_type": "LORA",
                                         "task_type": "SEQ_CLS"}),
    "lm-adapter": lambda d, b: _adapter(d, {"base_model_name_or_path": str(b), "peft_type": "LORA",
                                            "task_type": "CAUSAL_LM"}),
    "config-json-cut": lambda d, b: _cut(_bert_copy(d, b) / "config.json", 40),
    "shard-missing": _shard_missing,
    "remote-code": lambda d, b: _edited_config(d, b, auto_map={
        "AutoConfig": "configuration_x.XConfig", "AutoModelForSequenceClassification": "modeling_x.XModel"}),
    "run-logits-cut": lambda d, b: _run_with(d, results_json="{}", logits_npz=_logits()[:-60]),
    "run-logits-junk": lambda d, b: _run_with(d, results_json="{}", logits_npz=b"\x93NUMPY not an archive"),
    "run-logits-no-labels": lambda d, b: _run_with(d, results_json="{}", logits_npz=_npz(test_logits=[[0.0, 1.0]])),
    "run-results-cut": lambda d, b: _run_with(d, results_json='{"eval": {"accuracy": 0.'),
    "run-results-list": lambda d, b: _run_with(d, results_json="[1, 2]"),
    "run-config-cut": lambda d, b: _run_with(d, results_json="{}", config_yaml="model: [minilm-l6\n"),
    "lora-run": lambda d, b: _run_with(d, config_yaml="strategy: lora\nepochs: 3\n"),
}


def _build(tmp: Path, bert: Path, argv: list[str]) -> None:
    """Build the BUILDERS folders the row names (`@name`, `@name/...`)."""
    for arg in argv:
        name = arg[1:].split("/")[0] if arg.startswith("@") else None
        if name in BUILDERS and not (tmp / name).exists():
            BUILDERS[name](tmp / name, bert)


def _check_one_error_line(capsys, argv: list[str], fragment: str,
                          context: AbstractContextManager | None = None) -> str:
    """Run the CLI; assert exit code 2 and a stderr of exactly one line, holding `fragment`, without a traceback."""
    with context or nullcontext():
        code = main(argv)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("tunescope"), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("argv,fragment", TABLE)
def test_bad_input_gives_one_error_line(argv, fragment, capsys, tmp_path, monkeypatch, toy_csv, tiny_model_dir):
    monkeypatch.chdir(tmp_path)  # without --out, a row that got as far as its runs/<name> folder writes it here
    _write_files(tmp_path)
    bert = tiny_model_dir["bert"]
    _build(tmp_path, bert, argv)
    args = [_expand(a, tmp_path, toy_csv, bert) for a in argv]
    _check_one_error_line(capsys, args, _expand(fragment, tmp_path, toy_csv, bert))


def test_table_is_large_and_ids_are_unique():
    ids = [p.id for p in TABLE]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)


# --- the asset cache (assets/fetch.py): a damaged entry in a read-only cache -------------------------------------


def _damage(home: Path) -> None:
    """Extract the toy asset, then change bytes of one file without changing its size."""
    folder = fetch(TOY_ASSET)
    overwrite(folder / BIG_FILE, 0, b"\xff\xfe\xfd\xfc")
    assert home in folder.parents


@pytest.mark.parametrize("argv", [
    pytest.param(["assets", "fetch", TOY_ASSET], id="assets-fetch"),
    pytest.param(["finetune", "--model", TOY_ASSET, "--data", "{toy}"], id="finetune-model-asset"),
    pytest.param(["diagnose", "--model", TOY_ASSET, "--data", "{toy}"], id="diagnose-model-asset"),
])
def test_damaged_asset_in_read_only_cache(argv, capsys, tmp_path, monkeypatch, toy_home, toy_csv):
    monkeypatch.chdir(tmp_path)
    _damage(toy_home)
    args = [a.replace("{toy}", str(toy_csv)) for a in argv]
    line = _check_one_error_line(capsys, args, f"cannot fetch asset '{TOY_ASSET}'", read_only(toy_home))
    assert f"the cache folder {toy_home} is read-only" in line and "set TUNESCOPE_HOME to a writable folder" in line
    assert BIG_FILE in line  # names what is damaged


def test_missing_asset_in_read_only_cache(capsys, toy_home):
    line = _check_one_error_line(capsys, ["assets", "fetch", TOY_ASSET], "it is not fetched yet", read_only(toy_home))
    assert f"{toy_home} is read-only" in line


def test_damaged_asset_in_writable_cache_is_repaired(capsys, toy_home):
    """The contrast to the rows above: with a writable cache the same damage is repaired, exit 0."""
    _damage(toy_home)
    assert main(["assets", "fetch", TOY_ASSET]) == 0
    assert f"{TOY_ASSET}: {toy_home}" in capsys.readouterr().out


# --- issue 12: outputs and --help (cli/__init__.py) ---------------------------------------------------------------


def test_out_in_a_read_only_folder(capsys, tmp_path, monkeypatch, toy_csv, tiny_model_dir):
    """--out under a folder this process cannot write: one line naming that folder, before anything loads."""
    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv), "--out", str(locked / "run")]
    line = _check_one_error_line(capsys, argv, f"bad value '{locked / 'run'}' for --out: the folder '{locked}' is "
                                               "not writable", read_only(locked))
    assert "expected a folder you can write in" in line


@pytest.mark.parametrize("argv", [["--help"], ["finetune", "--help"], ["assets", "fetch", "--help"]])
def test_help_is_unchanged(argv, capsys):
    """The one-line errors leave --help alone: the usage and options on stdout, exit 0, nothing on stderr."""
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: tunescope") and "options:" in captured.out
    assert captured.err == ""
