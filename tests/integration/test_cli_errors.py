"""Bad input: exit code 2, one clear line on stderr naming the value and what is accepted, no traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from tunescope.cli import main


def _fails_cleanly(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("tunescope: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_unknown_model_name_suggests(capsys, toy_csv, tmp_path):
    _fails_cleanly(capsys, ["finetune", "--model", "minilm-l7", "--data", str(toy_csv), "--out", str(tmp_path)],
                   "unknown model 'minilm-l7'", "Did you mean 'minilm-l6'")


def test_unknown_dataset_name_suggests(capsys, tiny_model_dir, tmp_path):
    _fails_cleanly(capsys, ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", "roten_tomatoes",
                            "--out", str(tmp_path)], "unknown dataset 'roten_tomatoes'", "Did you mean 'rotten_tomatoes'")


def test_unknown_strategy_suggests(capsys, tmp_path):
    _fails_cleanly(capsys, ["finetune", "--strategy", "lorra", "--out", str(tmp_path)],
                   "unknown strategy 'lorra'", "Did you mean 'lora'")


def test_missing_column(capsys, tiny_model_dir, toy_csv, tmp_path):
    _fails_cleanly(capsys, ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(toy_csv),
                            "--text-column", "review", "--out", str(tmp_path)],
                   "text column 'review' not found", "columns: text, label")


def test_labels_neither_int_nor_string(capsys, tiny_model_dir, tmp_path):
    path = tmp_path / "float.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "label": [0.5, 1.5, 2.25] * 10}).to_csv(path, index=False)
    _fails_cleanly(capsys, ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(path),
                            "--out", str(tmp_path / "r")], "neither an integer nor a string")


def test_single_class(capsys, tiny_model_dir, tmp_path):
    path = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "label": ["pos"] * 30}).to_csv(path, index=False)
    _fails_cleanly(capsys, ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(path),
                            "--out", str(tmp_path / "r")], "single class")


def test_empty_data(capsys, tiny_model_dir, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    _fails_cleanly(capsys, ["finetune", "--model", str(tiny_model_dir["bert"]), "--data", str(path),
                            "--out", str(tmp_path / "r")], "empty")


def test_bad_config_key_in_yaml(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epoch: 3\n")
    _fails_cleanly(capsys, ["finetune", "--config", str(cfg), "--out", str(tmp_path / "r")],
                   "unknown config key 'epoch'", "Did you mean 'epochs'")


@pytest.mark.parametrize("override,fragment", [
    ("epochs=-1", "bad value -1.0 for epochs: expected a positive number"),
    ("batch_size=many", "bad value 'many' for batch_size: expected an integer"),
    ("lr_scheduler=fancy", "bad value 'fancy' for lr_scheduler"),
])
def test_bad_config_value(capsys, tmp_path, override, fragment):
    _fails_cleanly(capsys, ["finetune", override, "--out", str(tmp_path / "r")], fragment)


def test_checkpoint_folder_without_weights(capsys, toy_csv, tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    _fails_cleanly(capsys, ["finetune", "--model", str(folder), "--data", str(toy_csv), "--out", str(tmp_path / "r")],
                   "holds no weights")


def test_missing_config_file(capsys, tmp_path):
    _fails_cleanly(capsys, ["run", "--config", str(tmp_path / "nope.yaml")], "does not exist")


def test_report_of_non_run(capsys, tmp_path):
    _fails_cleanly(capsys, ["report", str(tmp_path)], "not a finished tunescope run")


def test_resume_without_checkpoint(capsys, tmp_path):
    _fails_cleanly(capsys, ["finetune", "--resume", "--out", str(tmp_path)], "nothing to resume")


def test_unknown_benchmark(capsys):
    _fails_cleanly(capsys, ["bench", "nope"], "unknown benchmark 'nope'")
