"""The per-layer metric registry: one registration per metric, carrying everything its readers need.

A metric is registered once, next to its formula, with the metadata the rest of tunescope reads
(lm-eval's `register_metric(higher_is_better=...)` pattern): `LayerCapture` / `layer_diagnostics` build its
recorder, `tunescope diagnose --metrics` lists it, `DiagnosticsCallback` logs its keys, and the report draws
one panel per key with its label, unit and scale. No reader names a metric.

    @layer_metric("my_share", label="my share S_l", description="S_l = ...", bounds=(0.0, 1.0))
    class MyShareRecorder(AttentionStatistic): ...     # the class is the recorder factory: cls(num_layers)

A recorder (`LayerRecorder`) attaches to the instrumented pass through a `capture.PassContext` (forward /
tensor hooks, the shared attention wrapper) and/or reads the parameter gradients after it
(`reads_param_grads`). A metric without a recorder is metadata only: its column is written elsewhere
(`delta_cka` needs two checkpoints), but it is labelled and plotted like the others.

Built-in metrics live in LAYER_METRIC_MODULES; they are imported on the first lookup through the functions
below (not at import time, so the modules that register can import this one without a cycle).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from tunescope.errors import UserError, did_you_mean
from tunescope.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from tunescope.diagnostics.capture import PassContext

# Modules that register the built-in metrics (a metric in a new module adds one line here).
LAYER_METRIC_MODULES: tuple[str, ...] = (
    "tunescope.diagnostics.attention",
    "tunescope.diagnostics.gradients",
    "tunescope.diagnostics.layerwise",
)
RESERVED_KEYS = ("layer", "score")  # columns the diagnostics table writes itself


class LayerRecorder:
    """Accumulates one metric over the probe batches of an instrumented pass; subclasses override what they use.

    Lifecycle: built with `factory(num_layers)`; `attach(ctx)` when the pass starts; `set_batch(valid_tokens)`
    before each forward; `add_param_grads(...)` once after the pass if `reads_param_grads`; then `table()`.
    """

    reads_param_grads: ClassVar[bool] = False

    def attach(self, ctx: PassContext) -> None:
        """Add hooks through `ctx.hooks` or enter context managers on `ctx.stack`; both are undone after the pass."""

    def set_batch(self, valid_tokens: torch.Tensor | None) -> None:
        """Real (non-padding) tokens, bool [B, T], of the next forward (None = all)."""

    def add_param_grads(self, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor | None],
                        groups: Sequence[int]) -> None:
        """dL/dtheta of every block parameter, summed over the probe batches; groups[i] = block of params[i]."""

    def table(self) -> list[dict[str, float]]:
        """Per layer {key: value} for every key of the metric (NaN where nothing was measured)."""
        raise NotImplementedError


RecorderFactory = Callable[[int], LayerRecorder]
F = TypeVar("F", bound=Callable[[int], LayerRecorder])


@dataclass(frozen=True)
class Column:
    """One key of the per-layer table and how to show it."""

    key: str
    label: str
    """Human name, used as plot title and in help texts (e.g. "attention entropy H_l")."""
    unit: str = ""
    """Shown after the label, e.g. "nats"; empty for ratios and counts."""
    log_scale: bool = False
    """Plot on a log axis (quantities spanning orders of magnitude across layers)."""
    bounds: tuple[float, float] | None = None
    """The closed range every finite value lies in, e.g. (0, 1) for a share; None = unrestricted."""
    description: str = ""
    """The definition, one line (shown in the report and in `tunescope diagnose --help`)."""

    @property
    def title(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


@dataclass(frozen=True)
class LayerMetric:
    """A registered per-layer metric: its headline key `name`, further keys, metadata and recorder."""

    name: str
    label: str
    description: str
    unit: str = ""
    log_scale: bool = False
    bounds: tuple[float, float] | None = None
    needs_backward: bool = False
    """The pass must run a backward (tensor hooks on gradients, or parameter gradients)."""
    recorder: RecorderFactory | None = None
    """`factory(num_layers) -> LayerRecorder`; None = metadata only (the column is written elsewhere)."""
    extra_columns: tuple[Column, ...] = ()
    """Further keys the recorder writes (e.g. attn_entropy_norm next to attn_entropy)."""
    order: float = 50.0
    """Position in tables, plots and option lists (built-ins 10-40, comparison columns 90)."""

    @property
    def recorded(self) -> bool:
        """Measured by `layer_diagnostics` on one model (not a comparison of two checkpoints)."""
        return self.recorder is not None

    @property
    def columns(self) -> tuple[Column, ...]:
        head = Column(self.name, self.label, self.unit, self.log_scale, self.bounds, self.description)
        return (head, *self.extra_columns)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)


def _check_metric(name: str, metric: LayerMetric) -> None:
    """Registration-time checks: a well-formed record whose keys no other metric writes."""
    if not isinstance(metric, LayerMetric):
        raise TypeError(f"layer metric {name!r}: expected a LayerMetric, got {type(metric).__name__}")
    if metric.name != name:
        raise ValueError(f"layer metric {name!r}: registered under a different name than its record {metric.name!r}")
    if metric.recorder is not None and not callable(metric.recorder):
        raise TypeError(f"layer metric {name!r}: recorder must be callable(num_layers)")
    taken = {k: other for other, m in LAYER_METRICS.items() for k in m.keys}
    for key in metric.keys:
        if key in RESERVED_KEYS or key in taken or metric.keys.count(key) > 1:
            raise ValueError(f"layer metric {name!r}: key {key!r} is already written by "
                             f"{taken.get(key, 'the diagnostics table')!r}")
    for col in metric.columns:
        if col.bounds is not None and not col.bounds[0] <= col.bounds[1]:
            raise ValueError(f"layer metric {name!r}: bounds {col.bounds} of {col.key!r} are not (low, high)")


LAYER_METRICS: Registry[LayerMetric] = Registry("layer metric", check=_check_metric)


def layer_metric(name: str, *, label: str, description: str, unit: str = "", log_scale: bool = False,
                 bounds: tuple[float, float] | None = None, needs_backward: bool = False,
                 extra_columns: Sequence[Column] = (), order: float = 50.0) -> Callable[[F], F]:
    """Decorator: register the recorder factory (usually the recorder class) as per-layer metric `name`."""

    def register(factory: F) -> F:
        LAYER_METRICS.register(name, LayerMetric(name, label, description, unit, log_scale, bounds, needs_backward,
                                                 factory, tuple(extra_columns), order))
        return factory

    return register


def _load_builtins() -> None:
    for module in LAYER_METRIC_MODULES:
        importlib.import_module(module)


def layer_metrics(*, recorded_only: bool = False) -> list[LayerMetric]:
    """Every registered metric in display order (`order`, then registration order)."""
    _load_builtins()
    metrics = sorted((m for _, m in LAYER_METRICS.items()), key=lambda m: m.order)
    return [m for m in metrics if m.recorded or not recorded_only]


def get_layer_metric(name: str) -> LayerMetric:
    _load_builtins()
    return LAYER_METRICS.get(name)


def recordable_metric_names() -> tuple[str, ...]:
    """Names accepted by `layer_diagnostics(metrics=...)`, `--metrics` and `DiagnosticsCallback(metrics=...)`."""
    return tuple(m.name for m in layer_metrics(recorded_only=True))


def check_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a metric list (None = every recorded metric); returned in display order, without repeats."""
    known = recordable_metric_names()
    if metrics is None:
        return known
    if isinstance(metrics, str):  # "attn_entropy" would otherwise be read as a list of characters
        metrics = [metrics]
    for m in metrics:
        if m not in known:
            raise UserError(f"bad value {m!r} for diagnostics metrics: expected some of {', '.join(known)}."
                            + did_you_mean(str(m), known))
    return tuple(m for m in known if m in set(metrics))


def table_columns() -> list[tuple[LayerMetric, Column]]:
    """(metric, column) for every key of every registered metric, in display order."""
    return [(m, c) for m in layer_metrics() for c in m.columns]


def table_keys() -> tuple[str, ...]:
    """Every per-layer key a diagnostics table may hold (the results.json contract), in display order."""
    return tuple(c.key for _, c in table_columns())


def within_bounds(column: Column, value: float, tol: float = 1e-9) -> bool:
    """A finite value inside the column's declared bounds (up to `tol`, for float round-off)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        return False
    if column.bounds is None:
        return True
    low, high = column.bounds
    return low - tol <= value <= high + tol
