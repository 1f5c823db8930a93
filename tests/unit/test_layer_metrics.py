"""The per-layer metric registry: the results.json contract, validation at registration, and that one
registration is all a metric needs (table, report panels, no mention of its name anywhere else)."""

import math
from pathlib import Path

import matplotlib
import pytest
import torch

from tests.unit._layer_metric_helpers import TOY, TOY_METRIC, registered
from tunescope.diagnostics.layerwise import layer_diagnostics
from tunescope.diagnostics.metrics import (
    LAYER_METRICS,
    Column,
    LayerMetric,
    check_metrics,
    layer_metrics,
    table_columns,
    table_keys,
    within_bounds,
)
from tunescope.errors import UserError
from tunescope.models.tiny import tiny_classifier, tiny_tokenizer, toy_sentiment

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")

CONTRACT = ("attn_entropy", "attn_entropy_norm", "act_grad_norm", "param_grad_norm", "param_grad_rel", "delta_cka")
SRC = Path(__file__).resolve().parents[2] / "src" / "tunescope"


def test_builtin_keys_keep_the_results_contract_and_carry_metadata():
    keys = table_keys()
    assert [k for k in keys if k in CONTRACT] == list(CONTRACT)  # same keys, same relative order
    assert "attn_sink_share" in keys
    for metric, col in table_columns():
        assert col.label and col.description, col.key
    by_name = {m.name: m for m in layer_metrics()}
    assert by_name["attn_entropy"].keys == ("attn_entropy", "attn_entropy_norm")
    assert by_name["param_grad_norm"].keys == ("param_grad_norm", "param_grad_rel")
    assert by_name["act_grad_norm"].needs_backward and not by_name["attn_sink_share"].needs_backward
    assert not by_name["delta_cka"].recorded  # metadata only: needs two checkpoints
    assert check_metrics(None) == ("attn_entropy", "attn_sink_share", "act_grad_norm", "param_grad_norm")


def test_check_metrics_orders_and_rejects_with_a_suggestion():
    assert check_metrics(["param_grad_norm", "attn_entropy", "attn_entropy"]) == ("attn_entropy", "param_grad_norm")
    with pytest.raises(UserError, match="attn_sink_share"):
        check_metrics(["attn_sink"])
    with pytest.raises(UserError, match="delta_cka"):  # a comparison column cannot be recorded on one model
        check_metrics(["delta_cka"])


def test_registration_is_validated():
    with pytest.raises(ValueError, match="already written"):
        LAYER_METRICS.register("entropy_again", LayerMetric("entropy_again", "x", "x", extra_columns=(
            Column("attn_entropy_norm", "x"),)))
    with pytest.raises(ValueError, match="different name"):
        LAYER_METRICS.register("a_name", LayerMetric("another_name", "x", "x"))
    with pytest.raises(ValueError, match="already written"):
        LAYER_METRICS.register("score", LayerMetric("score", "x", "x"))
    with pytest.raises(TypeError):
        LAYER_METRICS.register("not_a_record", {"label": "x"})
    assert "entropy_again" not in LAYER_METRICS and "a_name" not in LAYER_METRICS


def test_within_bounds():
    share = Column("s", "s", bounds=(0.0, 1.0))
    assert within_bounds(share, 1.0 + 1e-12) and not within_bounds(share, 1.1) and not within_bounds(share, math.nan)
    assert within_bounds(Column("x", "x"), -5.0)


def _batch(arch="bert"):
    texts, labels = toy_sentiment(8, seed=4)
    tok = tiny_tokenizer(texts)
    model = tiny_classifier(arch, tok)
    enc = dict(tok(texts, padding=True, return_tensors="pt"))
    enc["labels"] = torch.tensor(labels)
    return model, enc


def test_a_metric_defined_in_one_place_is_recorded_with_the_others():
    model, enc = _batch()
    with registered():
        assert TOY in check_metrics(None)
        rows, _ = layer_diagnostics(model, [enc])
    assert TOY not in check_metrics(None)
    with torch.no_grad():
        hidden = model(**{k: v for k, v in enc.items() if k != "labels"}, output_hidden_states=True).hidden_states
    valid = enc["attention_mask"].bool()
    for row, h in zip(rows, hidden[1:]):  # hidden[l + 1] = output of block l
        assert row[TOY] == pytest.approx(float(h[valid].pow(2).mean().sqrt()), rel=1e-5)
        for metric, col in table_columns():
            if metric.recorded or col.key == TOY:
                assert within_bounds(col, row[col.key]), (col.key, row[col.key])


def test_report_panels_take_label_unit_and_scale_from_the_registry():
    from tunescope.report.sections.diagnostics import layer_figure

    model, enc = _batch("llama")
    with registered():
        rows, _ = layer_diagnostics(model, [enc])
        fig = layer_figure(rows, band=[1])
        columns = [c for _, c in table_columns()]
    titles = {ax.get_title(): ax.get_yscale() for ax in fig.axes if ax.get_title()}
    for col in columns:
        if col.key in rows[0]:
            assert titles[col.title] == ("log" if col.log_scale else "linear"), col.key
    assert titles[TOY_METRIC.columns[0].title] == "log" and "residual stream RMS R_l (a.u.)" in titles
    assert "attention sink share S_l" in titles


def test_the_new_metric_is_named_only_where_it_is_registered():
    """attn_sink_share needs no per-metric code outside its registration in diagnostics/attention.py."""
    mentions = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "attn_sink_share" in p.read_text())
    assert mentions == ["diagnostics/attention.py"]


def test_transfer_profiles_take_their_panels_from_the_registry():
    """One panel per recorded metric present in the runs; runs cached before a metric existed just lack it."""
    from tunescope.report.transfer_figures import transfer_figures

    old = [{"layer": i, "attn_entropy": 1.0 + i, "act_grad_norm": 0.1 / (i + 1), "param_grad_norm": 1.0}
           for i in range(3)]
    new = [{**r, "attn_sink_share": 0.2 * (i + 1)} for i, r in enumerate(old)]
    summary = {"accuracy_mean": 0.7, "accuracy_std": 0.0, "n": 1, "trainable_params": 1}
    runs = [{"regime": regime, "strategy": "lora", "inflection_layers": [1], "diagnostics_before": rows,
             "diagnostics_after": [{**r, "delta_cka": 0.1} for r in rows]}
            for regime, rows in (("under", old), ("over", new))]
    figs = transfer_figures({"transfer": {"summary": {"under": {"lora": summary}, "over": {"lora": summary}},
                                          "runs": runs}})
    panels = {ax.get_title(): ax.get_yscale() for ax in figs["profiles"].axes}
    assert panels == {"attention entropy H_l (nats)": "linear", "attention sink share S_l": "linear",
                      "activation grad norm A_l": "log", "parameter grad norm G_l": "log"}
