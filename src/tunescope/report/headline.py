"""The headline of a report: what a reader needs before any table, taken from results.json alone.

Four answers, in this order (report/sections/overview.py draws them at the top of every report):
  ran       what was run: command, strategy, model, data with its split sizes, seed, wall time;
  result    the headline number against its baseline: test accuracy against the majority-class baseline
            (classification), test loss / task accuracy against the base model before training (SFT), the
            best strategy's mean accuracy (compare), the inflection layers (diagnose), J (jump), ...;
  adapted   what was trained and why, with ONE reason: the plan's (results `plan`: chosen strategy and its
            first fired rule) when the run has one, else the layer selection's (`adapted_because`, else
            `diagnostics.reason`);
  warnings  how many entries `warnings` holds, and of which kinds (the red box above lists them).
Every function returns plain text (None when the run has nothing to say); the section escapes it.
"""

from __future__ import annotations

from tunescope.report.tables import duration

# SFT metrics compared with the base model, in reading order: (key in eval, label, lower is better).
SFT_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("loss", "test loss", True),
    ("task_accuracy_loglik", "task accuracy (log-likelihood)", False),
    ("task_accuracy_generate", "task accuracy (generation)", False),
)


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _get(results: dict, *path: str):
    for key in path:
        if not isinstance(results, dict):
            return None
        results = results.get(key)
    return results


def _signed(delta: float) -> str:
    return f"{delta:+.4f}"


def ran(results: dict) -> str:
    """'finetune, strategy lora, model M, data D (800 train / 100 validation / 100 test examples), seed 0,
    wall time 7 min 35 s' (only the parts the run recorded)."""
    parts = [str(results.get("command") or "run")]
    if results.get("strategies"):
        parts.append("strategies " + ", ".join(map(str, results["strategies"])))
    elif results.get("strategy"):
        parts.append(f"strategy {results['strategy']}")
    if results.get("model"):
        parts.append(f"model {results['model']}")
    if results.get("data"):
        sizes = results.get("data_sizes") or {}
        counts = " / ".join(f"{n:,} {split}" for split, n in sizes.items() if isinstance(n, int))
        parts.append(f"data {results['data']}" + (f" ({counts} examples)" if counts else ""))
    if results.get("seeds"):
        parts.append("seeds " + ", ".join(map(str, results["seeds"])))
    elif results.get("seed") is not None:
        parts.append(f"seed {results['seed']}")
    if _num(results.get("wall_seconds")) is not None:
        parts.append(f"wall time {duration(results['wall_seconds'])}")
    return ", ".join(parts)


def _classification_result(results: dict) -> str | None:
    acc = _num(_get(results, "eval", "accuracy"))
    base = _num(_get(results, "baseline", "accuracy"))
    label = _get(results, "baseline", "majority_label")
    label = f", always predicting {label!r}" if label is not None else ""
    if acc is None:
        return f"majority-class baseline {base:.4f}{label} (no test accuracy recorded)" if base is not None else None
    if base is None:
        return f"test accuracy {acc:.4f} (no majority-class baseline recorded)"
    return f"test accuracy {acc:.4f} vs majority-class baseline {base:.4f}{label}: {_signed(acc - base)}"


def _sft_result(results: dict) -> str | None:
    ev = results.get("eval") or {}
    if _num(ev.get("loss")) is None:
        return None
    # The base model's numbers: `baseline` when the run stores them there, else `eval_before` (--eval-before).
    before = results.get("baseline") if _num(_get(results, "baseline", "loss")) is not None else None
    before = before or results.get("eval_before") or {}
    now, then = [], []
    for key, label, _ in SFT_METRICS:
        if _num(ev.get(key)) is None:
            continue
        now.append(f"{label} {ev[key]:.4f}" + (f" (perplexity {ev['perplexity']:.4g})"
                                                  if key == "loss" and _num(ev.get("perplexity")) else ""))
        if _num(before.get(key)) is not None:
            then.append(f"{label} {before[key]:.4f} ({_signed(ev[key] - before[key])})")
    text = ", ".join(now)
    if then:
        return f"{text}; base model before training: {', '.join(then)}"
    return f"{text}; base model not evaluated (add --eval-before for its numbers)"


def _compare_result(results: dict) -> str | None:
    summary = [e for e in _get(results, "comparison", "summary") or [] if _num(e.get("accuracy")) is not None]
    if not summary:
        return None
    best = max(summary, key=lambda e: e["accuracy"])
    std = _num(best.get("accuracy_std"))
    spread = f" ± {std:.2g}" if std else ""
    text = (f"best test accuracy {best['accuracy']:.4f}{spread} ({best['strategy']}, mean of "
            f"{best.get('n_seeds', 1)} seed(s))")
    base = _num(best.get("baseline_accuracy"))
    if base is not None:
        text += f" vs majority-class baseline {base:.4f}: {_signed(best['accuracy'] - base)}"
    return text


def _other_result(results: dict) -> str | None:
    """The one number of the commands without an evaluation split."""
    layers = _get(results, "diagnostics", "inflection_layers")
    if results.get("command") == "diagnose" and layers is not None:
        n = len(_get(results, "diagnostics", "layers") or [])
        return f"inflection layers {layers}" + (f" of {n}" if n else "")
    if _num(_get(results, "jump", "J")) is not None:
        return f"final-layer jump J = {results['jump']['J']:.4g}"
    if _num(_get(results, "basin", "certificate", "radius")) is not None:
        return f"certified L2 radius {results['basin']['certificate']['radius']:.4g}"
    if _num(_get(results, "ntk", "ft_ratio")) is not None:
        return f"FT ratio {results['ntk']['ft_ratio']:.4g}"
    if _num(results.get("heldout_ppl")) is not None:
        return f"held-out perplexity {results['heldout_ppl']:.4g}"
    finding = _get(results, "transfer", "finding")
    if isinstance(finding, dict) and "reproduces" in finding:
        verdict = {True: "reproduces", False: "does not reproduce"}.get(finding["reproduces"], "not decidable")
        return f"the paper's finding {verdict}"
    return None


def result(results: dict) -> str | None:
    """The headline number against its baseline (see the module docstring); None when the run has none."""
    for part in (_classification_result, _sft_result, _compare_result, _other_result):
        text = part(results)
        if text:
            return text
    return None


def reason(results: dict) -> str | None:
    """The one reason the headline gives for what was trained: the plan's first fired rule when results hold a
    `plan`, else `adapted_because`, else the layer selection's `diagnostics.reason`."""
    plan = results.get("plan")
    if isinstance(plan, dict):
        for rule in plan.get("rules_fired") or []:
            because = rule.get("because") if isinstance(rule, dict) else rule
            if because:
                name = rule.get("name") if isinstance(rule, dict) else None
                return f"{because} (rule {name})" if name else str(because)
    return results.get("adapted_because") or _get(results, "diagnostics", "reason") or None


def adapted(results: dict) -> str | None:
    """What was trained: the plan's choice, the adapted layers and the trainable share of the parameters."""
    parts = []
    plan = results.get("plan")
    if isinstance(plan, dict) and plan.get("strategy"):
        parts.append(f"the plan chose strategy {plan['strategy']}")
    layers = results.get("adapted_layers")
    if layers is not None:
        n = len(_get(results, "diagnostics", "layers") or [])
        parts.append(f"LoRA adapters at layers {', '.join(map(str, layers))}" + (f" of {n}" if n else ""))
    elif results.get("command") == "diagnose" and _get(results, "diagnostics", "inflection_layers") is not None:
        parts.append("nothing trained: the layers LoRA would adapt")
    trainable, total = _num(results.get("trainable_params")), _num(results.get("total_params"))
    if trainable is not None and total:
        parts.append(f"{trainable:,.0f} of {total:,.0f} parameters trainable ({100 * trainable / total:.3g}%)")
    return "; ".join(parts) or None


def warnings_summary(results: dict) -> str:
    """'none', or '2 (collapse: lora-seed0, full-seed0), listed in the red box above'."""
    items = [w for w in results.get("warnings") or [] if isinstance(w, dict)]
    if not items:
        return "none"
    kinds: dict[str, list[str]] = {}
    for w in items:
        kinds.setdefault(str(w.get("kind", "warning")), []).append(str(w["run"]) if w.get("run") else "")
    described = "; ".join(kind + (": " + ", ".join(r for r in runs if r) if any(runs) else "")
                          for kind, runs in kinds.items())
    return f"{len(items)} ({described}), listed in the red box above"
