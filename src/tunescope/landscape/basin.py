"""Basin radius along one direction: exponential bracketing + bisection, both signs; 1-D curves on a grid.

Definition (METHODS.md section 4, [ours]): the radius along delta is the largest a > 0 with
    S(theta + a delta) >= S(theta) - tau          (absolute tau, default 0.05), or
    S(theta + a delta) >= S(theta) * (1 - tau)    (relative tau).
The search assumes the score leaves the basin once along the ray (it returns the edge of the first
exit it brackets). Bracketing multiplies (or divides) a by a factor f from a starting guess until the
edge lies in [lo, hi] (lo inside, hi outside); bisection then halves [lo, hi] until
hi - lo <= max(atol, rtol * hi). The returned radius is lo, the largest scale *verified* inside.
The factor starts at `growth` and squares after every miss, capped at 2 (f = 1.25, 1.56, 2, 2, ...):
random directions in high dimension have concentrated radii, so a warm start from the previous
directions' median with growth 1.25 brackets in ~2 evaluations with a narrow bracket, and a cold start
(growth 2) is plain doubling. A direction (both signs) then costs ~10 evaluations instead of 41.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tunescope.errors import UserError


def score_threshold(s0: float, tau: float, relative: bool = False) -> float:
    """The basin floor: S0 - tau (absolute) or S0 * (1 - tau) (relative)."""
    if tau < 0 or (relative and tau >= 1):
        raise UserError(f"bad value {tau} for --tau: expected >= 0 (and < 1 when relative)")
    return s0 * (1.0 - tau) if relative else s0 - tau


@dataclass
class RadiusResult:
    """Radius along one sign of one direction; `trace` holds every (a, S) evaluated, in order."""

    radius: float
    lo: float
    hi: float
    evaluations: int
    hit_max: bool = False  # still inside at a_max: the radius is a lower bound
    trace: list[tuple[float, float]] = field(default_factory=list)


def find_radius(score_at: Callable[[float], float], threshold: float, *, a_init: float, rtol: float = 0.05,
                atol: float = 0.0, a_max: float = 1e4, a_min: float = 1e-9, sign: float = 1.0,
                growth: float = 2.0) -> RadiusResult:
    """Largest a > 0 with score_at(sign * a) >= threshold, by exponential bracketing then bisection.

    score_at(a) must return S(theta + a delta). Stops when hi - lo <= max(atol, rtol * hi); the result
    is lo (verified inside). Inside at a_max: radius a_max, hit_max=True. Outside even at a_min: 0.
    """
    if a_init <= 0 or rtol < 0 or atol < 0 or (rtol == 0 and atol == 0) or growth <= 1:
        raise UserError(f"bad radius search settings a_init={a_init}, rtol={rtol}, atol={atol}, growth={growth}: "
                        "expected a_init > 0, a positive tolerance and growth > 1")
    trace: list[tuple[float, float]] = []

    def inside(a: float) -> bool:
        s = float(score_at(sign * a))
        trace.append((sign * a, s))
        return s >= threshold

    a = min(max(a_init, a_min), a_max)
    f = min(growth, 2.0)
    if inside(a):
        lo, hi = a, None
        while hi is None:
            if lo >= a_max:
                return RadiusResult(a_max, a_max, a_max, len(trace), True, trace)
            a = min(f * lo, a_max)
            if inside(a):
                lo = a
                f = min(f * f, 2.0)
            else:
                hi = a
    else:
        lo, hi = 0.0, a
        while lo == 0.0:
            if hi <= a_min:
                return RadiusResult(0.0, 0.0, hi, len(trace), False, trace)
            a = hi / f
            if inside(a):
                lo = a
            else:
                hi = a
                f = min(f * f, 2.0)
    while hi - lo > max(atol, rtol * hi):
        mid = 0.5 * (lo + hi)
        if inside(mid):
            lo = mid
        else:
            hi = mid
    return RadiusResult(lo, lo, hi, len(trace), False, trace)


@dataclass
class DirectionRadius:
    """Both signs of one direction; `radius` = min(positive, negative) (the basin around theta on the line)."""

    positive: RadiusResult
    negative: RadiusResult

    @property
    def radius(self) -> float:
        return min(self.positive.radius, self.negative.radius)

    @property
    def evaluations(self) -> int:
        return self.positive.evaluations + self.negative.evaluations


def direction_radius(score_at: Callable[[float], float], threshold: float, *, a_init: float,
                     **kwargs) -> DirectionRadius:
    """Radius along +delta and -delta (each by `find_radius`); the negative side starts from the positive
    radius with growth min(growth, 1.25) (the two sides of a random line have similar radii)."""
    growth = kwargs.pop("growth", 2.0)
    pos = find_radius(score_at, threshold, a_init=a_init, sign=1.0, growth=growth, **kwargs)
    warm = pos.radius > 0 and not pos.hit_max
    neg = find_radius(score_at, threshold, a_init=pos.radius if warm else a_init, sign=-1.0,
                      growth=min(growth, 1.25) if warm else growth, **kwargs)
    return DirectionRadius(pos, neg)


def curve(score_at: Callable[[float], float], grid: Sequence[float]) -> list[float]:
    """1-D curve: S(theta + a delta) for every a in `grid` (one evaluation each)."""
    return [float(score_at(float(a))) for a in grid]


def symmetric_grid(a_max: float, points: int = 41) -> list[float]:
    """`points` equally spaced scales on [-a_max, a_max] (odd `points` includes 0)."""
    if points < 3 or a_max <= 0:
        raise UserError(f"bad grid settings a_max={a_max}, points={points}: expected a_max > 0, points >= 3")
    step = 2 * a_max / (points - 1)
    return [-a_max + i * step for i in range(points)]


def grid_radius(grid: Sequence[float], scores: Sequence[float], threshold: float, sign: float = 1.0) -> float:
    """Radius read off a curve: the largest grid |a| on the `sign` side such that every grid point
    between 0 and it is inside (S >= threshold). 0 when the first point out from 0 is already outside."""
    side = sorted(((abs(a), s) for a, s in zip(grid, scores, strict=True) if a * sign > 0), key=lambda t: t[0])
    radius = 0.0
    for a, s in side:
        if s < threshold:
            break
        radius = a
    return radius
