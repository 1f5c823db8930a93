"""The per-layer diagnostics table from ONE forward + backward pass per probe batch.

In a single pass, with hooks that are always removed:
- attention entropy H_l and its normalised form (diagnostics.attention, on the model's own SDPA kernel);
- activation gradient norm A_l = mean over valid tokens of ||dL/dh_l[t]||_2 (tensor hooks on block outputs);
- parameter gradient norm G_l = ||dL/dtheta_l||_2 and G_l / ||theta_l||_2, with L the mean probe loss;
- optionally the block outputs h_l at valid tokens, for Delta-CKA against another checkpoint.
The backward uses `torch.autograd.grad`, so the model's `.grad` buffers (a running training step's) are untouched;
frozen parameters (e.g. under LoRA) are given requires_grad only for the pass. Padding is masked everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from tunescope.diagnostics.attention import EntropyRecorder, record_attention_entropy
from tunescope.diagnostics.capture import HookSet, block_output, hooks, masked_token_rows
from tunescope.diagnostics.cka import delta_cka
from tunescope.diagnostics.gradients import (
    ActivationGradRecorder,
    block_parameters,
    param_grad_table,
    param_grad_table_from_model,
)
from tunescope.errors import UserError
from tunescope.models.layers import ModelLayout, model_layout

METRICS = ("attn_entropy", "act_grad_norm", "param_grad_norm")
TABLE_KEYS = ("layer", "attn_entropy", "attn_entropy_norm", "act_grad_norm", "param_grad_norm", "param_grad_rel",
              "delta_cka")


def check_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a metric list (None = all of METRICS)."""
    if metrics is None:
        return METRICS
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise UserError(f"bad value {bad[0]!r} for diagnostics metrics: expected some of {', '.join(METRICS)}")
    return tuple(metrics)


class LayerCapture:
    """Instruments a model for any forward/backward run inside `instrument()`; read the table afterwards.

    Set `set_batch(attention_mask)` ([B, T]) before each forward so padding is masked.
    """

    def __init__(self, layout: ModelLayout, metrics: Sequence[str], keep_hidden: bool = False):
        n = layout.num_layers
        self.layout = layout
        self.metrics = tuple(metrics)
        self.entropy = EntropyRecorder(n) if "attn_entropy" in metrics else None
        self.act_grad = ActivationGradRecorder(n) if "act_grad_norm" in metrics else None
        self.hidden: list[list[torch.Tensor]] | None = [[] for _ in range(n)] if keep_hidden else None
        self._valid: torch.Tensor | None = None

    def set_batch(self, attention_mask: torch.Tensor | None) -> None:
        self._valid = None if attention_mask is None else attention_mask.to(torch.bool)
        if self.entropy is not None:
            self.entropy.valid_tokens = self._valid
        if self.act_grad is not None:
            self.act_grad.valid_tokens = self._valid

    def _attach_hidden(self, hook_set: HookSet) -> None:
        def keep(layer: int):
            def on_forward(_m, _a, output):
                rows = masked_token_rows(block_output(output).detach(), self._valid)
                self.hidden[layer].append(rows.float().cpu())

            return on_forward

        for i, block in enumerate(self.layout.blocks):
            hook_set.forward(block, keep(i))

    @contextmanager
    def instrument(self, model: nn.Module) -> Iterator[LayerCapture]:
        with ExitStack() as stack:
            hook_set = stack.enter_context(hooks())
            if self.act_grad is not None:
                self.act_grad.attach(hook_set, self.layout.blocks)
            if self.hidden is not None:
                self._attach_hidden(hook_set)
            if self.entropy is not None:
                stack.enter_context(record_attention_entropy(model, self.layout.attentions, self.entropy))
            yield self

    def hidden_states(self) -> list[torch.Tensor]:
        """Per layer: [n_valid_tokens_total, d] block outputs collected so far."""
        return [torch.cat(h) if h else torch.empty(0) for h in (self.hidden or [])]

    def table(self, param_rows: list[dict[str, float]] | None = None) -> list[dict]:
        """Rows {"layer", metric keys...}; `param_rows` from param_grad_table(...) when measured."""
        n = self.layout.num_layers
        rows = [{"layer": i} for i in range(n)]
        if self.entropy is not None:
            for row, e in zip(rows, self.entropy.table()):
                row.update(e)
        if self.act_grad is not None:
            for row, a in zip(rows, self.act_grad.table()):
                row["act_grad_norm"] = a
        if param_rows is not None:
            for row, p in zip(rows, param_rows):
                row.update(p)
        return rows


def _model_inputs(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


@contextmanager
def _diagnostic_mode(model: nn.Module, params: Sequence[nn.Parameter]):
    """eval() (no dropout noise) and requires_grad on the probed parameters, both restored afterwards."""
    was_training = model.training
    flags = [p.requires_grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(was_training)


def layer_diagnostics(model: nn.Module, probe_batches: Sequence[dict], *, metrics: Sequence[str] | None = None,
                      keep_hidden: bool = False) -> tuple[list[dict], LayerCapture]:
    """One forward + backward per probe batch; returns (per-layer rows, the capture holding hidden states).

    probe_batches: dicts with input_ids [B, T], attention_mask [B, T], labels [B] (or [B, T] for LMs).
    The loss L is the model's own loss averaged over the probe batches; G_l is the norm of dL/dtheta_l.
    """
    metrics = check_metrics(metrics)
    if not probe_batches:
        raise UserError("bad value 0 for the number of probe batches: expected at least 1")
    layout = model_layout(model)
    capture = LayerCapture(layout, metrics, keep_hidden=keep_hidden)
    params, groups = block_parameters(model, layout.block_prefixes)
    want_params = "param_grad_norm" in metrics
    need_backward = want_params or "act_grad_norm" in metrics
    device = next(model.parameters()).device
    sums: list[torch.Tensor | None] = [None] * len(params)
    with _diagnostic_mode(model, params), capture.instrument(model):
        for batch in probe_batches:
            inputs = _model_inputs(batch, device)
            if "labels" not in inputs and need_backward:
                raise UserError("bad probe batch without 'labels': gradient diagnostics need a loss")
            capture.set_batch(inputs.get("attention_mask"))
            with torch.set_grad_enabled(need_backward):
                out = model(**inputs)
            if not need_backward:
                continue
            # autograd.grad: fires the tensor hooks, leaves every .grad untouched.
            grads = torch.autograd.grad(out.loss / len(probe_batches), params, allow_unused=True)
            if want_params:
                for i, g in enumerate(grads):
                    if g is not None:
                        sums[i] = g.detach() if sums[i] is None else sums[i] + g.detach()
            del out, grads
    param_rows = param_grad_table(params, sums, groups, layout.num_layers) if want_params else None
    return capture.table(param_rows), capture


def collect_hidden_states(model: nn.Module, probe_batches: Sequence[dict]) -> list[torch.Tensor]:
    """Per layer [n_valid_tokens, d] block outputs of `model` on the probe batches (forward only, no grad)."""
    layout = model_layout(model)
    capture = LayerCapture(layout, metrics=(), keep_hidden=True)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture.instrument(model):
            for batch in probe_batches:
                inputs = _model_inputs(batch, device)
                inputs.pop("labels", None)
                capture.set_batch(inputs.get("attention_mask"))
                model(**inputs)
    finally:
        model.train(was_training)
    return capture.hidden_states()


def delta_cka_profile(reference: Sequence[torch.Tensor], other: Sequence[torch.Tensor], *,
                      variance: float = 0.99, max_components: int = 128) -> list[float]:
    """Delta-CKA_l = 1 - linearCKA(X_l P_l, Y_l P_l) per layer (P_l: PCA basis of the reference X_l)."""
    if len(reference) != len(other):
        raise UserError(f"bad checkpoints for Delta-CKA: {len(reference)} vs {len(other)} layers, expected equal")
    return [delta_cka(x, y, variance=variance, max_components=max_components) for x, y in zip(reference, other)]


def add_delta_cka(rows: list[dict], reference: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> list[dict]:
    """Write `delta_cka` into the per-layer rows (in place; also returned)."""
    for row, d in zip(rows, delta_cka_profile(reference, other)):
        row["delta_cka"] = d
    return rows


def training_step_table(model: nn.Module, capture: LayerCapture) -> list[dict]:
    """The table after an ordinary instrumented `loss.backward()` (parameter norms read from `.grad`)."""
    rows = None
    if "param_grad_norm" in capture.metrics:
        rows = param_grad_table_from_model(model, capture.layout.block_prefixes)
    return capture.table(rows)


def diagnose(model: nn.Module, probe_batches: Sequence[dict], *, width: int | None = None,
             keep_hidden: bool = False) -> tuple[dict, LayerCapture]:
    """Per-layer table + inflection-layer selection, as plain data for results.json `diagnostics`.

    Returns ({"layers": rows, "inflection_layers": [...], "reason": str, "scores": [...], "decay": [...],
    "probe_tokens": n}, capture). Selection: METHODS.md section 1 (diagnostics.selection).
    """
    from tunescope.diagnostics.selection import select_inflection_layers

    rows, capture = layer_diagnostics(model, probe_batches, keep_hidden=keep_hidden)
    sel = select_inflection_layers([r["attn_entropy"] for r in rows], [r["act_grad_norm"] for r in rows], width)
    tokens = sum(int(b["attention_mask"].sum()) for b in probe_batches if "attention_mask" in b)
    return {"layers": rows, "inflection_layers": sel.layers, "reason": sel.reason, "scores": sel.scores,
            "decay": sel.decay, "probe_tokens": tokens, "probe_batches": len(probe_batches)}, capture
