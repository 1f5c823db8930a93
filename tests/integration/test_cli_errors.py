"""Bad input: exit code 2 and ONE line on stderr naming the value and what is accepted, never a traceback.

One table, one row per bad input, run through the real CLI in-process (`main([...])`). Every row fails before any
training: bad data stops `load_classification` before a model is loaded, bad values stop the config check, and the
few rows that load a model load the tiny BERT of `tiny_model_dir`. The whole file runs in well under a minute.

Placeholders in argv: `{tmp}` (this test's folder), `{toy}` (a valid toy csv), `{bert}` (a tiny BERT checkpoint),
`@NAME` (tmp_path/NAME, written from FILES below). Rows marked `FAILS_TODAY` are bad inputs that do not yet give
exactly one clean line, because of code outside the data / asset modules; the mark is strict, so a row that starts
passing must lose it.
"""

from __future__ import annotations

import json
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


ARGPARSE = fails_today("argparse prints its usage block before 'error:' (cli/__init__.py, parser.parse_args)")


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
    row("finetune --model {bert} --data @folder", "is a folder; pass a csv/tsv/jsonl/json/parquet file",
        id="data-file-folder"),
    row("finetune --model {bert} --data @nope.csv", "data file '{tmp}/nope.csv' does not exist", id="data-file-missing"),
    row("finetune --model {bert} --data {toy} --text-column review", "text column 'review' not found",
        id="data-text-column-missing"),
    row("finetune --model {bert} --data {toy} --label-column lable", "Did you mean 'label'", id="data-label-column-typo"),
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
    row("finetune --model {bert} --data {toy} --strategy lora-inflection --layers 99",
        "bad value [99] for layers: expected block indices in 0..3", id="finetune-layers-out-of-range"),
    row("diagnose --model {bert} --data {toy} --against @nowhere", "model path '{tmp}/nowhere' does not exist",
        id="diagnose-against-missing"),
    row("sparsity --model {bert} --data {toy} --targets nope", "bad value 'nope' for sift_targets",
        id="sparsity-targets-unknown"),
    row("landscape --model {bert} --data {toy} --scope nope", "bad value 'nope' for --scope",
        id="landscape-scope-unknown"),
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
    row("bench diagnostics steps=abc", "steps", id="bench-option-text"),
    row("bench sift nope=1", "nope", id="bench-option-unknown"),
    row("calibrate @fake-run", "expected a finished run directory", id="calibrate-unfinished-run"),

    # --- run directories -----------------------------------------------------------------------------------------
    row("report {tmp}", "not a finished tunescope run", id="report-not-a-run"),
    row("report @nowhere", "does not exist", id="report-missing"),
    row("calibrate @nowhere", "expected a finished run directory with results.json", id="calibrate-missing"),
    row("calibrate {toy}", "expected a finished run directory", id="calibrate-file"),

    # --- fail today, outside data/ and assets/ ---------------------------------------------------------------------
    # argparse: a usage block of several lines precedes the error line.
    row("finetune --seed abc", "invalid int value: 'abc'", id="argparse-seed-text", marks=ARGPARSE),
    row("nosuchcommand", "invalid choice: 'nosuchcommand'", id="argparse-unknown-command", marks=ARGPARSE),
    row("assets nope", "invalid choice: 'nope'", id="argparse-assets-subcommand", marks=ARGPARSE),
    # `tunescope` alone prints the help on stdout and exits 2 with nothing on stderr (cli/__init__.py).
    row("", "COMMAND", id="no-command", marks=fails_today("no error line: help goes to stdout")),
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
