"""The plan's config fields (`tunescope plan` / `tunescope run`). No heavy imports: the CLI builds help from it."""

from __future__ import annotations

from dataclasses import dataclass

from tunescope.config import Options, check

PLAN_MODES = ("full", "rules", "trials")
# The strategies a classification plan weighs (tests check the list against the strategy registry).
CLASSIFICATION_CANDIDATES = ("full", "lora", "lp-ft", "sift", "lp-lora", "lora-inflection", "head")


def parse_budget_params(text: str | None) -> tuple[str, float] | None:
    """'1%' -> ('fraction', 0.01); '0.5%' -> ('fraction', 0.005); '120000' -> ('count', 120000.0); None -> None."""
    if text is None or str(text).strip() == "":
        return None
    raw = str(text).strip()
    try:
        if raw.endswith("%"):
            value = float(raw[:-1]) / 100.0
            return ("fraction", value) if 0 < value <= 1 else None
        value = float(raw)
    except ValueError:
        return None
    return ("count", value) if value >= 1 and value == int(value) else None


@dataclass
class PlanOptions(Options):
    """How the plan measures, decides and tries."""

    budget_params: str | None = None
    """Trainable-parameter budget: a share of the model ('1%') or a count ('120000'); default: none."""
    budget_minutes: float | None = None
    """Wall-time budget of plan + final training in minutes (epochs are cut to fit); default: none."""
    plan_mode: str = "full"
    """full: rules rank the candidates, trials verify them; rules: the top-ranked candidate, no trials
    (ablation); trials: every candidate that fits the budget goes to the trials, no rules (ablation)."""
    trial_steps: int = 0
    """Optimizer steps of the first trial rung (0: a quarter of an epoch, at least 20); later rungs double."""
    trial_candidates: int = 0
    """0: every candidate the rules leave enters one round of trials; N: rounds of the N best-ranked (the next N
    only when none of a round survives). docs/results/plan.md: one round was better and cheaper than rounds of 3."""
    candidates: list[str] | None = None
    """Strategies the plan weighs (default: every classification strategy); one name: that strategy is trained
    as given, the measurements and rules still reported."""
    plan_probe_examples: int = 512
    """Training examples whose frozen features fit the linear probe (its accuracy is read on validation)."""

    def validate(self) -> None:
        check(self.budget_params is None or parse_budget_params(self.budget_params) is not None, "budget_params",
              self.budget_params, "a share like '1%' (0-100%] or a whole number of parameters like '120000'")
        check(self.budget_minutes is None or self.budget_minutes > 0, "budget_minutes", self.budget_minutes,
              "a positive number of minutes")
        check(self.plan_mode in PLAN_MODES, "plan_mode", self.plan_mode, f"one of {', '.join(PLAN_MODES)}")
        check(self.trial_steps >= 0, "trial_steps", self.trial_steps, "an integer >= 0 (0: automatic)")
        check(self.trial_candidates >= 0, "trial_candidates", self.trial_candidates,
              "an integer >= 0 (0: every candidate in one round)")
        check(self.candidates is None or (len(self.candidates) > 0 and set(self.candidates) <= set(
            CLASSIFICATION_CANDIDATES)), "candidates", self.candidates,
              f"one or more of {', '.join(CLASSIFICATION_CANDIDATES)}")
        check(self.plan_probe_examples >= 16, "plan_probe_examples", self.plan_probe_examples, "an integer >= 16")
