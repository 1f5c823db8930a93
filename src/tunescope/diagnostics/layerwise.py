"""The per-layer diagnostics table from ONE forward + backward pass per probe batch.

Which metrics exist is the registry's business (diagnostics.metrics.LAYER_METRICS): `LayerCapture` builds the
recorder of every requested metric and lets it attach to the pass (forward / tensor hooks, the shared attention
wrapper), and hands the parameter gradients to those that read them after the pass. Built-in metrics:
attention entropy and sink share (diagnostics.attention), activation and parameter gradient norms
(diagnostics.gradients), Delta-CKA against another checkpoint (here, from the block outputs h_l kept at valid
tokens). The backward uses `torch.autograd.grad`, so the model's `.grad` buffers (a running training step's)
are untouched; frozen parameters (e.g. under LoRA) are given requires_grad only for the pass. Padding is masked
everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from tunescope.diagnostics.capture import (
    HookSet,
    PassContext,
    block_output,
    hooks,
    masked_token_rows,
)
from tunescope.diagnostics.cka import delta_cka
from tunescope.diagnostics.gradients import block_parameters
from tunescope.diagnostics.metrics import (
    LAYER_METRICS,
    LayerMetric,
    LayerRecorder,
    check_metrics,
    get_layer_metric,
    table_keys,
)
from tunescope.errors import UserError
from tunescope.models.layers import ModelLayout, model_layout

# The inflection-layer selection reads these two columns, so `diagnose` always records them.
SELECTION_METRICS = ("attn_entropy", "act_grad_norm")

LAYER_METRICS.register("delta_cka", LayerMetric(
    "delta_cka", label="Delta-CKA (against the other checkpoint)", bounds=(0.0, 1.0), order=90,
    description="1 - linearCKA(X_l P, Y_l P): block outputs of two checkpoints on the same valid tokens, P the PCA "
                "basis of X_l (99% variance, k <= 128)"))  # metadata only: needs two checkpoints (add_delta_cka)


def __getattr__(name: str):
    """METRICS / TABLE_KEYS, read from the registry at access time so later registrations are included."""
    if name == "METRICS":
        return check_metrics(None)
    if name == "TABLE_KEYS":
        return ("layer", *table_keys())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LayerCapture:
    """Instruments a model for any forward/backward run inside `instrument()`; read the table afterwards.

    metrics: registered metric names (None = every recorded one). Call `set_batch(attention_mask)` ([B, T])
    before each forward so padding is masked.
    """

    def __init__(self, layout: ModelLayout, metrics: Sequence[str] | None = None, keep_hidden: bool = False):
        n = layout.num_layers
        self.layout = layout
        self.metrics = check_metrics(metrics)
        self.recorders: dict[str, LayerRecorder] = {m: get_layer_metric(m).recorder(n) for m in self.metrics}
        self.hidden: list[list[torch.Tensor]] | None = [[] for _ in range(n)] if keep_hidden else None
        self._valid: torch.Tensor | None = None
        self._ctx: PassContext | None = None

    @property
    def needs_backward(self) -> bool:
        return any(get_layer_metric(m).needs_backward for m in self.metrics)

    @property
    def reads_param_grads(self) -> bool:
        return any(r.reads_param_grads for r in self.recorders.values())

    def set_batch(self, attention_mask: torch.Tensor | None) -> None:
        self._valid = None if attention_mask is None else attention_mask.to(torch.bool)
        if self._ctx is not None:
            self._ctx.valid_tokens = self._valid
        for recorder in self.recorders.values():
            recorder.set_batch(self._valid)

    def add_param_grads(self, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None],
                        groups: Sequence[int]) -> None:
        """After the pass: the block parameters' gradients (summed over batches) for the metrics that read them."""
        for recorder in self.recorders.values():
            if recorder.reads_param_grads:
                recorder.add_param_grads(params, grads, groups)

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
            self._ctx = PassContext(model, self.layout, hook_set, stack, valid_tokens=self._valid)
            try:
                for recorder in self.recorders.values():
                    recorder.attach(self._ctx)
                if self.hidden is not None:
                    self._attach_hidden(hook_set)
                yield self
            finally:
                self._ctx = None

    def hidden_states(self) -> list[torch.Tensor]:
        """Per layer: [n_valid_tokens_total, d] block outputs collected so far."""
        return [torch.cat(h) if h else torch.empty(0) for h in (self.hidden or [])]

    def table(self, param_rows: list[dict[str, float]] | None = None) -> list[dict]:
        """Rows {"layer", the keys of every metric...} in registry order; `param_rows` are merged in if given."""
        rows = [{"layer": i} for i in range(self.layout.num_layers)]
        for recorder in self.recorders.values():
            for row, values in zip(rows, recorder.table()):
                row.update(values)
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
    """One forward (+ one backward if a metric needs it) per probe batch; returns (per-layer rows, the capture).

    probe_batches: dicts with input_ids [B, T], attention_mask [B, T], labels [B] (or [B, T] for LMs).
    metrics: registered names (None = all recorded ones). The loss L is the model's own loss averaged over the
    probe batches; the recorders that read parameter gradients get dL/dtheta of the block parameters.
    """
    if not probe_batches:
        raise UserError("bad value 0 for the number of probe batches: expected at least 1")
    layout = model_layout(model)
    capture = LayerCapture(layout, metrics, keep_hidden=keep_hidden)
    params, groups = block_parameters(model, layout.block_prefixes)
    want_params = capture.reads_param_grads
    need_backward = capture.needs_backward
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
    if want_params:
        capture.add_param_grads(params, sums, groups)
    return capture.table(), capture


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
    """The table after an ordinary instrumented `loss.backward()` (parameter gradients read from `.grad`)."""
    if capture.reads_param_grads:
        params, groups = block_parameters(model, capture.layout.block_prefixes)
        capture.add_param_grads(params, [p.grad for p in params], groups)
    return capture.table()


def diagnose(model: nn.Module, probe_batches: Sequence[dict], *, width: int | None = None,
             keep_hidden: bool = False, metrics: Sequence[str] | None = None) -> tuple[dict, LayerCapture]:
    """Per-layer table + inflection-layer selection, as plain data for results.json `diagnostics`.

    Returns ({"layers": rows, "inflection_layers": [...], "reason": str, "scores": [...], "decay": [...],
    "probe_tokens": n}, capture). metrics: as in layer_diagnostics (None = all); SELECTION_METRICS are always
    added. Selection: METHODS.md section 1 (diagnostics.selection).
    """
    from tunescope.diagnostics.selection import select_inflection_layers

    if metrics is not None:
        metrics = (*check_metrics(metrics), *SELECTION_METRICS)
    rows, capture = layer_diagnostics(model, probe_batches, keep_hidden=keep_hidden, metrics=metrics)
    sel = select_inflection_layers([r["attn_entropy"] for r in rows], [r["act_grad_norm"] for r in rows], width)
    tokens = sum(int(b["attention_mask"].sum()) for b in probe_batches if "attention_mask" in b)
    return {"layers": rows, "inflection_layers": sel.layers, "reason": sel.reason, "scores": sel.scores,
            "decay": sel.decay, "probe_tokens": tokens, "probe_batches": len(probe_batches)}, capture
