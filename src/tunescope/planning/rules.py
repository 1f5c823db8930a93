"""The plan's decision rules: measurements (planning/measure.py) + budget -> ranked candidates, rejections and
the list of rules that fired, each with its numbers. Pure functions of plain data, so each rule is tested on
synthetic measurement tables. docs/plan.md gives the paper finding behind every threshold.

The pool starts from every classification strategy with its priority (higher = tried first); each rule may
promote, demote or reject candidates and says why. `decide` applies the rules in RULES order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Thresholds (docs/plan.md says where each comes from).
SATURATED_SHARE = 0.5      # half the probe examples confidently predicted by the model's own head: outputs saturate
GRADIENT_SPREAD = math.log(10.0)  # max_l A_l / min_l A_l >= 10: the error signal dies out across the blocks
SEPARABLE_GAIN = 0.10      # linear probe >= majority + 10 points: the frozen features already separate the classes
INSEPARABLE_GAIN = 0.03    # linear probe < majority + 3 points: LP alone learns (almost) nothing
QUASI_SPARSE_SHARE = 0.5   # the top 1% of gradient entries carry >= 50% of ||g||^2

BASE_PRIORITY = {"full": 3.0, "lora": 3.0, "lp-ft": 2.0, "sift": 2.0, "lp-lora": 1.5, "lora-inflection": 1.0,
                 "head": 0.5}


@dataclass
class Candidate:
    """One strategy with the settings it would train with (config overrides) and its trainable parameters."""

    strategy: str
    settings: dict[str, Any]
    trainable_params: int
    priority: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"strategy": self.strategy, "settings": self.settings, "trainable_params": self.trainable_params,
                "priority": self.priority, "notes": self.notes}


@dataclass
class Pool:
    """The candidates still in play, and what the rules did to them."""

    candidates: dict[str, Candidate]
    rejected: list[dict] = field(default_factory=list)
    fired: list[dict] = field(default_factory=list)

    def reject(self, name: str, rule: str, reason: str) -> None:
        if name in self.candidates:
            del self.candidates[name]
            self.rejected.append({"strategy": name, "rule": rule, "reason": reason})

    def adjust(self, name: str, by: float, note: str) -> None:
        if name in self.candidates:
            self.candidates[name].priority += by
            self.candidates[name].notes.append(note)

    def fire(self, name: str, paper: str, because: str, effect: str) -> None:
        self.fired.append({"name": name, "paper": paper, "because": because, "effect": effect})

    def ranked(self) -> list[Candidate]:
        """Highest priority first; ties: fewer trainable parameters first (cheaper, and less to overfit)."""
        return sorted(self.candidates.values(), key=lambda c: (-c.priority, c.trainable_params))


def _spread(layers: dict) -> float:
    grads = [r["act_grad_norm"] for r in layers["layers"] if r.get("act_grad_norm", 0) > 0]
    return math.log(max(grads) / min(grads)) if len(grads) >= 2 else 0.0


def rule_gradient_suppression(m: dict, pool: Pool) -> None:
    """Inflection paper: LoRA belongs where the gradient is suppressed. No suppression -> adapt every layer."""
    sat = m["saturation"]["saturated_share"]
    spread = _spread(m["layers"])
    band = m["layers"]["inflection_layers"]
    numbers = (f"saturated outputs {sat:.0%} of probe examples (threshold {SATURATED_SHARE:.0%}), activation-"
               f"gradient spread max/min {math.exp(spread):.1f}x (threshold {math.exp(GRADIENT_SPREAD):.0f}x)")
    if sat >= SATURATED_SHARE or spread >= GRADIENT_SPREAD:
        pool.adjust("lora-inflection", +2.0, f"suppressed band at layers {band}")
        pool.fire("gradient-suppression", "inflection (arXiv 2511.00797)", numbers,
                  f"LoRA at the inflection band {band} is a candidate")
    else:
        pool.reject("lora-inflection", "no-gradient-suppression",
                    f"no suppressed layers ({numbers}): adapters at a band would leave trainable layers idle")
        pool.fire("no-gradient-suppression", "inflection (arXiv 2511.00797)", numbers,
                  "LoRA goes to every layer; lora-inflection rejected")


def rule_feature_separability(m: dict, pool: Pool) -> None:
    """LP-FT paper: when frozen features already separate the classes, fit the head first (LP), then fine-tune:
    the large LP head keeps the features from being distorted. When they do not, LP alone is worthless."""
    f = m["features"]
    gain = f["accuracy"] - f["majority_accuracy"]
    numbers = (f"linear probe {f['accuracy']:.3f} vs majority {f['majority_accuracy']:.3f} on "
               f"{f['validation_examples']} validation examples (gain {100 * gain:+.1f} points), head-norm growth "
               f"{f['head_norm_growth']:.1f}x")
    if gain >= SEPARABLE_GAIN:
        pool.adjust("lp-ft", +1.5, "features separate the classes")
        pool.adjust("lp-lora", +1.0, "features separate the classes")
        pool.fire("separable-features", "LP-FT (NeurIPS 2024)", numbers,
                  "LP-FT / LP-LoRA promoted (an LP head first: less feature change)")
    elif gain < INSEPARABLE_GAIN:
        # LP alone is then a near-constant guess; LP-FT / LP-LoRA only lose their head start (their FT stage can
        # still change the features), so they are demoted, not rejected.
        pool.reject("head", "inseparable-features", f"frozen features do not separate the classes ({numbers})")
        pool.adjust("lp-ft", -1.0, "features do not separate the classes")
        pool.adjust("lp-lora", -1.0, "features do not separate the classes")
        pool.fire("inseparable-features", "LP-FT (NeurIPS 2024)", numbers,
                  "head rejected (LP alone learns nothing), LP-FT / LP-LoRA demoted")


def rule_gradient_sparsity(m: dict, pool: Pool) -> None:
    """SIFT paper: pre-trained gradients are quasi-sparse, so the top-k entries carry the update. When they are
    not, SIFT at a small rate throws most of the gradient away - so it is demoted, not rejected: on the plan suite
    (docs/results/plan.md) the over-trained source had a dense gradient (top 1%: 45% of ||g||^2) and SIFT was
    still the best strategy within a 1% budget."""
    s = m["sparsity"]
    numbers = (f"top {s['fraction']:.0%} of {s['num_params']:,} block-weight gradient entries carry "
               f"{s['top_share']:.0%} of ||g||^2 (threshold {QUASI_SPARSE_SHARE:.0%})")
    if s["top_share"] >= QUASI_SPARSE_SHARE:
        pool.adjust("sift", +0.5, "quasi-sparse gradient")
        pool.fire("quasi-sparse-gradient", "SIFT (ICML 2024)", numbers, "SIFT promoted")
    else:
        pool.adjust("sift", -1.0, "dense gradient")
        pool.fire("dense-gradient", "SIFT (ICML 2024)", numbers, "SIFT demoted")


def rule_parameter_budget(m: dict, pool: Pool) -> None:
    """The user's trainable-parameter budget: candidates over it are rejected (their rank / rate were already
    lowered to fit where possible, planning/budget.py); with a budget the full-capacity strategies are out."""
    budget = m.get("budget_params")
    if budget is None:
        return
    over = [c for c in list(pool.candidates.values()) if c.trainable_params > budget]
    for c in over:
        pool.reject(c.strategy, "parameter-budget",
                    f"trains {c.trainable_params:,} parameters, over the budget of {budget:,}")
    pool.fire("parameter-budget", "user budget", f"at most {budget:,} trainable parameters "
              f"({100 * budget / m['total_params']:.2g}% of {m['total_params']:,})",
              f"rejected: {', '.join(c.strategy for c in over) or 'none'}")


RULES: tuple[Callable[[dict, Pool], None], ...] = (
    rule_parameter_budget,
    rule_gradient_suppression,
    rule_feature_separability,
    rule_gradient_sparsity,
)


def decide(measurements: dict, candidates: list[Candidate], *, use_rules: bool = True) -> Pool:
    """Apply RULES to the pool of `candidates` (with use_rules=False only the budget rule: the trials-only
    ablation). Returns the pool: .ranked() candidates, .rejected, .fired."""
    pool = Pool({c.strategy: c for c in candidates})
    for rule in RULES if use_rules else (rule_parameter_budget,):
        rule(measurements, pool)
    return pool
