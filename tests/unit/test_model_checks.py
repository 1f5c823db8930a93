"""Checks made before any weights load: safetensors headers, checkpoint folders, the weightless model, preflight,
quiet loading and benchmark options (issue 12).

The safetensors check is compared with the safetensors library itself: every file the check accepts, the library
opens and reads; every damaged file it refuses, the library refuses too (or would read wrong bytes).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tunescope.errors import UserError
from tunescope.models.checkpoint_check import (
    check_checkpoint_folder,
    check_safetensors,
    read_base_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _valid(path: Path) -> Path:
    """A safetensors file with several dtypes and shapes (and metadata), as save_pretrained writes them."""
    tensors = {"a.weight": torch.randn(3, 5), "b.bias": torch.arange(7, dtype=torch.int64),
               "c": torch.zeros(2, 2, dtype=torch.bfloat16), "d": torch.tensor([True, False]),
               "empty": torch.zeros(0, 4)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def _library_reads(path: Path) -> bool:
    """Whether the safetensors library opens the file and reads every tensor."""
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - a safe_open handle is not iterable
                f.get_tensor(key)
        return True
    except Exception:  # noqa: BLE001 - any refusal of the library counts
        return False


def _raw(path: Path, header: dict | bytes, data: bytes, length: int | None = None) -> Path:
    """A file made by hand: 8-byte length (default: the header's), header, data."""
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if length is None else length) + body + data)
    return path


# --- check_safetensors -------------------------------------------------------------------------------------------


def test_valid_file_passes_and_the_library_agrees(tmp_path):
    path = _valid(tmp_path / "ok.safetensors")
    check_safetensors(path)
    assert _library_reads(path)


def test_metadata_only_file_passes(tmp_path):
    path = _raw(tmp_path / "meta.safetensors", {"__metadata__": {"format": "pt"}}, b"")
    check_safetensors(path)
    assert _library_reads(path)


def test_every_truncation_is_refused_naming_the_file(tmp_path):
    good = _valid(tmp_path / "ok.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", good[:8])[0]
    cuts = sorted({0, 1, 7, 8, 9, header_end // 2, header_end - 1, header_end, header_end + 5, len(good) - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.safetensors"
        path.write_bytes(good[:cut])
        with pytest.raises(UserError, match=rf"bad file '{path}': .*(truncated|header)") as e:
            check_safetensors(path)
        assert "save_pretrained(..., safe_serialization=True)" in str(e.value)
        assert not _library_reads(path), cut


@pytest.mark.parametrize("header,data,fragment", [
    (b"{not json" + b" " * 20, b"", "header is not valid JSON"),
    (b"[1, 2, 3]", b"", "header is a JSON list"),
    ({"w": [0, 4]}, b"\0" * 4, "malformed header entry"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "malformed header entry"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 4, "malformed header entry"),
    ({"w": {"dtype": "F32", "shape": [1, "2"], "data_offsets": [0, 8]}}, b"\0" * 8, "malformed header entry"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12 bytes but its data_offsets"),
    ({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 10, "truncated: its tensors need 16"),
    ({"w": {"dtype": "X9", "shape": [2], "data_offsets": [0, 99]}}, b"\0" * 10, "truncated: its tensors need 99"),
])
def test_corrupt_headers_are_refused(tmp_path, header, data, fragment):
    path = _raw(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(UserError, match=fragment):
        check_safetensors(path)
    assert not _library_reads(path)


@pytest.mark.parametrize("length", [0, 1, 10**12])
def test_impossible_header_lengths_are_refused(tmp_path, length):
    path = _raw(tmp_path / "len.safetensors", {"__metadata__": {}}, b"", length=length)
    with pytest.raises(UserError, match=f"header length field says {length:,} bytes"):
        check_safetensors(path)


def test_the_data_bytes_are_never_read(tmp_path):
    """Garbage tensor data with an intact header passes: the check costs the header only."""
    good = _valid(tmp_path / "ok.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", good[:8])[0]
    path = tmp_path / "garbage-data.safetensors"
    path.write_bytes(good[:header_end] + b"\xff" * (len(good) - header_end))
    check_safetensors(path)


# --- check_checkpoint_folder -------------------------------------------------------------------------------------


def _folder(tmp_path: Path, name: str, files: dict[str, str | bytes]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, content in files.items():
        (folder / file).write_bytes(content) if isinstance(content, bytes) else (folder / file).write_text(content)
    return folder


def test_pickle_only_model_folder_is_refused_with_the_conversion(tmp_path):
    config = json.dumps({"model_type": "bert", "architectures": ["BertForSequenceClassification"]})
    folder = _folder(tmp_path, "pickled", {"config.json": config, "pytorch_model.bin": b"\x80\x04"})
    with pytest.raises(UserError) as e:
        check_checkpoint_folder(folder, "my-model")
    msg = str(e.value)
    assert "model folder 'my-model' holds only a pickle checkpoint (pytorch_model.bin)" in msg
    assert "unpickling can run arbitrary code" in msg
    assert "transformers.BertForSequenceClassification.from_pretrained(FOLDER).save_pretrained(FOLDER, " \
           "safe_serialization=True)" in msg


def test_pickle_next_to_safetensors_is_fine(tmp_path):
    folder = _folder(tmp_path, "both", {"config.json": "{}", "pytorch_model.bin": b"\x80\x04"})
    _valid(folder / "model.safetensors")
    check_checkpoint_folder(folder)


def test_sharded_pickle_only_folder_is_refused(tmp_path):
    folder = _folder(tmp_path, "shards", {"config.json": "{}", "pytorch_model-00001-of-00002.bin": b"\x80"})
    with pytest.raises(UserError, match=r"only a pickle checkpoint \(pytorch_model-00001-of-00002.bin\)"):
        check_checkpoint_folder(folder)


def test_pickle_only_adapter_is_refused_with_the_peft_conversion(tmp_path):
    folder = _folder(tmp_path, "adapter", {"adapter_config.json": json.dumps({"base_model_name_or_path": "b"}),
                                           "adapter_model.bin": b"\x80\x04"})
    with pytest.raises(UserError, match=r"adapter folder .* \(adapter_model.bin\).*PeftModel.from_pretrained"):
        check_checkpoint_folder(folder)


@pytest.mark.parametrize("file", ["adapter_config.json", "sift_config.json"])
@pytest.mark.parametrize("content,fragment", [
    ('{"base_model_name_or_path": "x"', "not readable JSON"),
    ('["x"]', "holds a JSON list"),
    ('{"peft_type": "LORA"}', "base_model_name_or_path is None"),
    ('{"base_model_name_or_path": ""}', "base_model_name_or_path is ''"),
])
def test_base_configs_are_checked(tmp_path, file, content, fragment):
    folder = _folder(tmp_path, "a", {file: content})
    with pytest.raises(UserError, match=f"bad file '{folder / file}': .*{fragment}"):
        check_checkpoint_folder(folder)
    with pytest.raises(UserError, match=fragment):
        read_base_config(folder)


def test_read_base_config(tmp_path):
    folder = _folder(tmp_path, "a", {"adapter_config.json": '{"base_model_name_or_path": "m", "task_type": "X"}'})
    assert read_base_config(folder) == {"base_model_name_or_path": "m", "task_type": "X"}
    assert read_base_config(tmp_path) is None


def test_missing_shard_and_corrupt_config_are_named(tmp_path):
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    folder = _folder(tmp_path, "sharded", {"config.json": "{}", "model.safetensors.index.json": json.dumps(index)})
    _valid(folder / "model-00001-of-00002.safetensors")
    with pytest.raises(UserError, match="names shard 'model-00002-of-00002.safetensors', which is not in the folder"):
        check_checkpoint_folder(folder)
    broken = _folder(tmp_path, "broken", {"config.json": '{"model_type": '})
    _valid(broken / "model.safetensors")
    with pytest.raises(UserError, match=f"bad file '{broken / 'config.json'}': not readable JSON"):
        check_checkpoint_folder(broken)


def test_every_safetensors_file_of_a_folder_is_checked(tmp_path):
    folder = _folder(tmp_path, "adapter", {"adapter_config.json": '{"base_model_name_or_path": "b"}'})
    (folder / "adapter_model.safetensors").write_bytes(b"\x01")
    with pytest.raises(UserError, match="adapter_model.safetensors'"):
        check_checkpoint_folder(folder)


# --- the weightless model and the loaders (models/load.py) ------------------------------------------------------


def _adapter_of(tmp_path: Path, base: Path, task_type: str = "SEQ_CLS") -> Path:
    folder = tmp_path / f"adapter-{task_type}"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(base), "peft_type": "LORA", "task_type": task_type}))
    save_file({"x": torch.zeros(1)}, str(folder / "adapter_model.safetensors"))
    return folder


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_model_skeleton_is_weightless(tiny_model_dir, arch):
    from tunescope.models.load import model_skeleton

    skeleton = model_skeleton(str(tiny_model_dir[arch]))
    assert type(skeleton).__name__.endswith("ForSequenceClassification")
    assert {p.device.type for p in skeleton.parameters()} == {"meta"}


def test_model_skeleton_never_reads_the_weights(tmp_path, tiny_model_dir):
    """Garbage tensor data behind an intact header: the skeleton is built all the same (from config.json alone)."""
    from tunescope.models.load import model_skeleton

    folder = shutil.copytree(tiny_model_dir["bert"], tmp_path / "m")
    st = folder / "model.safetensors"
    data = st.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    st.write_bytes(data[:header_end] + b"\xff" * (len(data) - header_end))
    assert model_skeleton(str(folder)) is not None


def test_adapter_folder_stands_for_its_base_only_where_a_classifier_is_loaded(tmp_path, tiny_model_dir):
    from tunescope.models.load import load_encoder_or_lm, model_skeleton

    base = tiny_model_dir["bert"]
    adapter = _adapter_of(tmp_path, base)
    assert type(model_skeleton(str(adapter))).__name__ == "BertForSequenceClassification"
    for task in ("causal-lm", "hidden-states"):
        with pytest.raises(UserError, match=f"is a PEFT adapter of base model '{base}', not a full model: pass the "
                                            f"base model '{base}' here, or merge"):
            model_skeleton(str(adapter), task)
    with pytest.raises(UserError, match="is a PEFT adapter of base model"):
        load_encoder_or_lm(str(adapter))
    with pytest.raises(UserError, match="is a PEFT adapter of task type 'CAUSAL_LM'"):
        model_skeleton(str(_adapter_of(tmp_path, base, "CAUSAL_LM")))


def test_remote_code_needs_the_flag(tmp_path, tiny_model_dir):
    from tunescope.models.load import load_classifier, model_skeleton

    folder = shutil.copytree(tiny_model_dir["bert"], tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "cfg.C"}}))
    for call in (lambda: model_skeleton(str(folder)), lambda: load_classifier(str(folder), 2)):
        with pytest.raises(UserError, match=r"ships its own code \(config.json auto_map: AutoConfig\), which tunescope "
                                            "does not run unless you pass --trust-remote-code"):
            call()


def test_quiet_loading_silences_the_load_report_and_the_progress_bar(tiny_model_dir, capfd):
    """A head of another size: transformers reports it (a warning) and draws its "Loading weights" bar; both are
    silent while loading, and transformers' settings are back afterwards."""
    from transformers.utils import logging as hf_logging

    from tunescope.models.load import load_classifier

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    try:
        capfd.readouterr()
        load_classifier(str(tiny_model_dir["bert"]), 5)
        err = capfd.readouterr().err
        assert "Loading weights" not in err and "LOAD REPORT" not in err, err
        assert hf_logging.get_verbosity() == hf_logging.WARNING and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


# --- preflight (experiments/preflight.py): model-dependent options, no data, no weights ---------------------------


def _ntk_config(model: Path, **values):
    from tunescope.config import build_config
    from tunescope.experiments.ntk import NTKConfig

    # The data does not exist: preflight must not read it.
    return build_config(NTKConfig, {"model": str(model), "data": "no/such/data.csv", **values})


@pytest.mark.parametrize("values,fragment", [
    ({"strategy": "lora", "layers": "0,4"}, r"bad value \[0, 4\] for layers: expected block indices in 0..3"),
    ({"strategy": "lp-lora", "lora_targets": "query,nope"}, "bad value 'nope' for lora_targets"),
    ({"strategy": "sift", "sift_targets": "query,nope"}, "bad value 'nope' for sift_targets"),
    ({"strategy": "sift", "sift_targets": "classifier"}, "bad value 'classifier' for sift_targets"),
])
def test_preflight_refuses_model_dependent_options(tiny_model_dir, values, fragment):
    from tunescope.experiments.preflight import preflight

    with pytest.raises(UserError, match=fragment):
        preflight(_ntk_config(tiny_model_dir["bert"], **values))


@pytest.mark.parametrize("values", [{"strategy": "lora", "layers": "3"}, {"strategy": "full", "layers": "99"},
                                    {"strategy": "sift", "sift_targets": "*.query"}, {"strategy": "sift"}])
def test_preflight_accepts_good_options_and_ignores_unread_ones(tiny_model_dir, values):
    from tunescope.experiments.preflight import preflight

    skeleton = preflight(_ntk_config(tiny_model_dir["llama" if values.get("sift_targets") is None else "bert"],
                                     **values))
    assert skeleton is not None


def test_preflight_names_the_flag_of_a_second_model(tmp_path, tiny_model_dir):
    from tunescope.experiments.preflight import preflight

    config = _ntk_config(tiny_model_dir["bert"])
    with pytest.raises(UserError, match=f"bad value '{tmp_path / 'gone'}' for --against: model path"):
        preflight(config, checkpoints={"--against": str(tmp_path / "gone")})


@pytest.mark.parametrize("scope,fragment", [("layers:1-4", "bad value 'layers:1-4' for --scope"),
                                            ("adapters", "bad value 'adapters' for --scope"),
                                            ("sparse", "bad value 'sparse' for --scope"),
                                            ("everything", "bad value 'everything' for --scope")])
def test_preflight_checks_the_landscape_scope(tiny_model_dir, scope, fragment):
    from tunescope.experiments.landscape import LandscapeConfig
    from tunescope.experiments.preflight import preflight

    with pytest.raises(UserError, match=fragment):
        preflight(LandscapeConfig(model=str(tiny_model_dir["gpt2"]), scope=scope))
    preflight(LandscapeConfig(model=str(tiny_model_dir["gpt2"]), scope="layers:1-3"))


# --- benchmark options (bench/__init__.py) ----------------------------------------------------------------------


def test_benchmark_options_are_converted_and_checked():
    from tunescope.bench import check_benchmark_options

    assert check_benchmark_options("sift", {"steps": "3", "rate": "0.05", "memory": "no", "model": "tiny"}) == \
        {"steps": 3, "rate": 0.05, "memory": False, "model": "tiny"}
    assert check_benchmark_options("jump", {"batch_size": 4}) == {"batch_size": 4}  # typed values pass through
    with pytest.raises(UserError, match=r"bad benchmark option 'step' for `tunescope bench sift`: unknown; "
                                        r"accepted: model=TEXT batch_size=N .* memory=true\|false"):
        check_benchmark_options("sift", {"step": "3"})
    for key, value, word in (("steps", "2.5", "an integer"), ("rate", "lots", "a number"),
                             ("memory", "maybe", "true or false")):
        with pytest.raises(UserError, match=f"bad benchmark option {key}='{value}' .*: expected {word}"):
            check_benchmark_options("sift", {key: value})


def test_load_benchmark_checks_before_running():
    from tunescope.bench import load_benchmark

    with pytest.raises(UserError, match="bad benchmark option 'steps' for `tunescope bench diagnostics`"):
        load_benchmark("diagnostics")({"steps": "5"})
