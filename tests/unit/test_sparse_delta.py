"""The sparse-delta file format (models/sparse_delta.py) on its own, without a SIFT engine."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn

from tunescope.errors import UserError
from tunescope.models import sparse_delta as fmt


def _model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2)).to(dtype)


def _write(folder, model: nn.Module):
    idx = torch.tensor([0, 5, 23], dtype=torch.int64)
    inc = torch.tensor([0.5, -0.25, 1e-3])
    head = torch.full((2, 4), 0.125)
    targets = {"0.weight": {"shape": [4, 6], "k": 3, "dtype": str(model[0].weight.dtype)}}
    fmt.write_delta(folder, {"0.weight": (idx, inc)}, {"1.weight": head}, targets, base_model="some/base",
                    extra={"sift": {"rate": 0.1}, "selected_params": 3})
    return idx, inc, head


def test_files_hold_the_documented_keys(tmp_path):
    _write(tmp_path, _model())
    with safe_open(str(tmp_path / fmt.DELTA_FILE), "pt") as f:
        assert set(f.keys()) == {"sparse/0.weight/indices", "sparse/0.weight/values", "dense/1.weight"}
        assert f.metadata() == {"format": "tunescope-sift"}
        assert f.get_tensor("sparse/0.weight/indices").dtype == torch.int64
        assert f.get_tensor("sparse/0.weight/values").dtype == torch.float32
    meta = json.loads((tmp_path / fmt.CONFIG_FILE).read_text())
    assert meta["format_version"] == fmt.FORMAT_VERSION and meta["base_model_name_or_path"] == "some/base"
    assert meta["dense"] == ["1.weight"] and meta["targets"]["0.weight"]["k"] == 3
    assert meta["sift"] == {"rate": 0.1} and meta["selected_params"] == 3
    assert fmt.is_delta_folder(tmp_path) and fmt.base_model_of(tmp_path) == "some/base"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_merge_adds_in_fp32_then_casts_and_unmerge_restores_exactly(tmp_path, dtype):
    model = _model(dtype)
    idx, inc, head = _write(tmp_path, model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    delta = fmt.load_delta(tmp_path)
    assert delta.num_values() == 3 + 8 and not delta.merged
    delta.merge(model)
    expected = before["0.weight"].view(-1).clone()
    expected[idx] = (expected[idx].float() + inc).to(dtype)
    assert torch.equal(model[0].weight.view(-1), expected)
    assert torch.equal(model[1].weight, head.to(dtype)) and torch.equal(model[0].bias, before["0.bias"])
    with pytest.raises(RuntimeError):
        delta.merge(model)
    delta.unmerge(model)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_masks_mark_only_the_sparse_entries(tmp_path):
    idx, _, _ = _write(tmp_path, _model())
    masks = fmt.load_delta(tmp_path).masks()
    assert set(masks) == {"0.weight"} and masks["0.weight"].shape == (4, 6)
    assert masks["0.weight"].view(-1).nonzero().view(-1).tolist() == idx.tolist()


def test_a_delta_for_another_model_or_no_delta_is_a_user_error(tmp_path):
    _write(tmp_path, _model())
    with pytest.raises(UserError, match="no parameter named"):
        fmt.load_delta(tmp_path).merge(nn.Linear(6, 4))
    with pytest.raises(UserError, match="not a SIFT checkpoint"):
        fmt.load_delta(tmp_path / "missing")


def test_the_sift_names_stay_importable():
    from tunescope.strategies.sift import SiftDelta, load_delta
    from tunescope.strategies.sift.state import CONFIG_FILE, DELTA_FILE, is_sift_folder

    assert SiftDelta is fmt.SparseDelta and load_delta is fmt.load_delta and is_sift_folder is fmt.is_delta_folder
    assert (DELTA_FILE, CONFIG_FILE) == ("sift_delta.safetensors", "sift_config.json")
