"""The settings of one basin measurement (`landscape.basins.measure_basin`), declared and validated once.

`tunescope landscape` composes its config from this group plus what it loads (model, data, evaluation set);
any other recipe that measures a basin can do the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunescope.config import Options, check

DIRECTION_TYPES = ("random", "worst", "sft")


@dataclass
class BasinOptions(Options):
    """Directions, basin floor, radius search, bounds, curves and certificate of a basin measurement."""

    directions: list[str] = field(default_factory=lambda: ["random"])
    """Direction types, comma-separated: random (most-case), worst (projected gradient ascent), sft."""
    num_directions: int = 8
    """Random directions m."""
    num_worst: int = 1
    """Worst-case directions (each from its own random start)."""
    scope: str = "all"
    """Parameters moved: all | body | layers:A-B | adapters | trainable | sparse (a SIFT run's trained entries)."""
    normalization: str = "none"
    """Random directions: none (raw N(0, I), the paper's choice) or tensor (each tensor rescaled to its weight norm)."""
    tau: float = 0.05
    """Basin floor: S(theta + a delta) >= S(theta) - tau (absolute), or S(theta) * (1 - tau) with relative=true."""
    relative: bool = False
    """Read tau as a relative drop."""
    rtol: float = 0.05
    """Bisection stops when hi - lo <= rtol * hi."""
    a_init: float | None = None
    """First scale tried (default 1e-3 raw, 0.05 tensor-normalised); later directions start at the running median."""
    worst_scale: float | None = None
    """Scale a of the worst-case ascent (default: the median random radius, else a_init)."""
    worst_steps: int = 10
    """Projected gradient-ascent steps."""
    worst_step_size: float = 0.5
    """Ascent step, as a fraction of the sphere radius sqrt(d)."""
    worst_batches: int = 2
    """Evaluation batches the ascent's loss uses."""
    at_scale: float | None = None
    """Scale a of the Clopper-Pearson bound on the fraction inside (default: half the median random radius)."""
    confidence: float = 0.95
    """Confidence of the Clopper-Pearson bounds."""
    certify_sigma: float = 0.0
    """Certified radius: noise sigma of the smoothed score (0: skip)."""
    certify_draws: int = 32
    """Certified radius: noise draws."""
    certify_q: float | None = None
    """Certified radius: the smoothed score must stay >= q (default: chance 1/C for classifiers, S/2 for LMs)."""
    curve_points: int = 21
    """Points of each 1-D curve (0: no curves)."""
    curve_directions: int = 1
    """Directions per type drawn as 1-D curves."""
    seed: int = 0
    """Seed of the data split and of the directions."""

    def validate(self) -> None:
        for d in self.directions:
            check(d in DIRECTION_TYPES, "directions", d, "a comma-separated subset of " + ",".join(DIRECTION_TYPES))
        check(len(self.directions) > 0, "directions", self.directions, "at least one of random, worst, sft")
        check(self.num_directions >= 1, "num_directions", self.num_directions, "a positive integer")
        check(self.num_worst >= 1, "num_worst", self.num_worst, "a positive integer")
        check(self.normalization in ("none", "tensor"), "normalization", self.normalization, "none or tensor")
        check(self.tau >= 0 and (not self.relative or self.tau < 1), "tau", self.tau,
              "a number >= 0 (< 1 when relative)")
        check(0 < self.rtol < 1, "rtol", self.rtol, "a number in (0, 1)")
        check(self.a_init is None or self.a_init > 0, "a_init", self.a_init, "a positive number")
        check(self.worst_scale is None or self.worst_scale > 0, "worst_scale", self.worst_scale, "a positive number")
        check(self.worst_steps >= 1, "worst_steps", self.worst_steps, "a positive integer")
        check(0 < self.confidence < 1, "confidence", self.confidence, "a number in (0, 1)")
        check(self.certify_sigma >= 0, "certify_sigma", self.certify_sigma, "a number >= 0")
        check(self.certify_draws >= 1, "certify_draws", self.certify_draws, "a positive integer")
        check(self.certify_q is None or 0 < self.certify_q < 1, "certify_q", self.certify_q, "a number in (0, 1)")
        check(self.curve_points == 0 or self.curve_points >= 3, "curve_points", self.curve_points, "0 or >= 3")
