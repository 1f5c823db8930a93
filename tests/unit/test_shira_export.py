"""SIFT delta -> peft SHiRA adapter (strategies/sift/export.py) on tiny in-process models, and the base-model names
saved adapters record (models/load.py public_model_id / checkpoint_base_source)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import PeftModel, ShiraConfig

from tunescope.errors import UserError
from tunescope.models import load
from tunescope.models.layers import head_parameter_names
from tunescope.models.sparse_delta import SparseDelta
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment
from tunescope.strategies.sift.config import num_selected, resolve_targets
from tunescope.strategies.sift.export import (
    BYTES_PER_ENTRY,
    build_shira_model,
    pad_entries,
    plan_shira,
    shira_rank,
)
from tunescope.strategies.sift.state import model_facts

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rank_is_the_smallest_that_holds_every_target():
    # k / (out + in): 100 / 64 -> 2 for a, 10 / 48 -> 1 for b; one r for all modules: 2
    assert shira_rank({"a": (32, 32), "b": (16, 32)}, {"a": 100, "b": 10}) == 2
    assert shira_rank({"a": (32, 32)}, {"a": 64}) == 1  # exactly r * (out + in)
    with pytest.raises(UserError, match="lower sift_rate"):  # r=2 would need 20 entries of a 2x8 matrix
        shira_rank({"a": (2, 8)}, {"a": 16})


def test_padding_adds_zero_entries_at_unselected_positions_sorted():
    idx, val = torch.tensor([5, 1, 9]), torch.tensor([0.5, 0.25, -1.0])
    flat, values = pad_entries(idx, val, numel=12, count=6)
    assert flat.tolist() == [0, 1, 2, 3, 5, 9] and values.tolist() == [0.0, 0.25, 0.0, 0.0, 0.5, -1.0]
    dense = torch.zeros(12)
    dense[flat] = values
    reference = torch.zeros(12)
    reference[idx] = val
    assert torch.equal(dense, reference)  # the padded entries add exactly nothing


def _tok():
    return tiny_tokenizer(toy_sentiment(64, 0)[0])


def _sift_delta(model, rate: float = 0.05, seed: int = 0) -> SparseDelta:
    """A delta like a SIFT run's: k = floor(rate * numel) + 1 random entries per attention target, random
    increments, and a new dense head."""
    gen = torch.Generator().manual_seed(seed)
    targets = resolve_targets(model, None)
    sparse, meta = {}, {}
    for name, weight in targets.items():
        k = num_selected(weight.numel(), rate)
        sparse[name] = (torch.randperm(weight.numel(), generator=gen)[:k], 0.1 * torch.randn(k, generator=gen))
        meta[name] = {"shape": list(weight.shape), "k": k, "dtype": str(weight.dtype)}
    params = dict(model.named_parameters())
    dense = {n: torch.randn(params[n].shape, generator=gen) for n in head_parameter_names(model)}
    return SparseDelta(config={"targets": meta, "dense": list(dense)}, sparse=sparse, dense=dense)


def _logits(model, tok) -> torch.Tensor:
    enc = tok(toy_sentiment(12, 3)[0], padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**enc).logits


# llama: grouped-query attention (k/v smaller than q/o: more padding); roberta: a head of two Linear layers
@pytest.mark.parametrize("arch", ["bert", "llama", "roberta"])
def test_shira_adapter_reproduces_the_merged_delta_and_survives_save_load(arch, tmp_path):
    tok = _tok()
    base = tiny_classifier(arch, tok, seed=0)
    base.config.pad_token_id = tok.pad_token_id
    delta = _sift_delta(base)
    plan = plan_shira(delta)
    merged = delta.merge(copy.deepcopy(base))
    expected = _logits(merged, tok)

    peft_model = build_shira_model(copy.deepcopy(base), delta, plan, "some/base", "SEQ_CLS")
    assert isinstance(peft_model.peft_config["default"], ShiraConfig)
    assert torch.equal(_logits(peft_model, tok), expected)  # same fp32 additions: bit for bit
    # every target holds r * (out + in) entries; the padding is what SIFT did not select
    for name, (flat, _) in plan.entries.items():
        rows, cols = merged.get_submodule(name).weight.shape
        assert flat.numel() == plan.r * (rows + cols) and flat.unique().numel() == flat.numel()
    assert plan.padding == plan.stored - sum(idx.numel() for idx, _ in delta.sparse.values()) > 0

    peft_model.save_pretrained(str(tmp_path))
    reloaded = PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path))
    assert torch.equal(_logits(reloaded, tok), expected)
    cfg = reloaded.peft_config["default"]
    assert cfg.base_model_name_or_path == "some/base" and cfg.r == plan.r and cfg.task_type == "SEQ_CLS"
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "SHIRA" and len(saved["modules_to_save"]) == len(set(saved["modules_to_save"]))
    assert plan.padding * BYTES_PER_ENTRY > 0


def test_conv1d_targets_are_refused_with_the_reason():
    model = tiny_classifier("gpt2", _tok(), seed=0)
    delta = _sift_delta(model)
    with pytest.raises(UserError, match="Conv1D"):
        build_shira_model(model, delta, plan_shira(delta), "b", "SEQ_CLS")


def test_model_facts_record_task_type_and_label_names():
    model = tiny_classifier("bert", _tok(), seed=0)
    model.config.id2label = {0: "rotten", 1: "fresh"}
    assert model_facts(model) == {"task_type": "SEQ_CLS", "label_names": ["rotten", "fresh"]}
    assert model_facts(torch.nn.Linear(2, 2)) == {"task_type": None, "label_names": None}


def test_public_model_id_never_names_the_asset_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESCOPE_HOME", str(tmp_path / "home"))
    cached = tmp_path / "home" / "assets" / "minilm-l6"
    cached.mkdir(parents=True)
    origin = "sentence-transformers/all-MiniLM-L6-v2"
    assert load.public_model_id("minilm-l6") == origin
    assert load.public_model_id(str(cached)) == origin  # the asset's cache folder passed as a folder
    assert load.public_model_id("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert load.public_model_id("org/some-model") == "org/some-model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert load.public_model_id("mine") == str((tmp_path / "mine").resolve())  # absolute, not cwd-relative
    # and back: a recorded origin loads the asset tunescope trained on
    monkeypatch.setattr(load, "resolve_model_source", lambda name: f"resolved:{name}")
    assert load.checkpoint_base_source(origin) == "resolved:minilm-l6"
    assert load.checkpoint_base_source("org/some-model") == "resolved:org/some-model"


def test_loaded_classifier_records_a_public_base_and_real_label_names(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    model, _ = load.load_classifier(str(tiny_model_dir["bert"]), 2, label_names=["rotten", "fresh"])
    assert model.config.id2label == {0: "rotten", 1: "fresh"} and model.config.label2id == {"rotten": 0, "fresh": 1}
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["query"], task_type="SEQ_CLS"))
    assert lora.peft_config["default"].base_model_name_or_path == str(tiny_model_dir["bert"].resolve())
