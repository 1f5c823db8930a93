"""`tunescope bench sft`: SFT step vs plain trl, DiagnosticsCallback's cost, SIFT vs LoRA at equal trainable params.

tunescope's SFT step beside a plain trl SFTTrainer step, the amortised cost of DiagnosticsCallback, and SIFT beside
LoRA at equal trainable parameters (state bytes, peak RSS, step time), measured side by side in one process.

Default: smollm2-135m; one batch = the first 4 training rows of quartz at max_length 96 (chat-rendered questions of
51-83 tokens, padded per batch to the longest); LoRA as `tunescope sft` trains it (r 8, alpha 16, dropout 0.1, on
the attention projections q, k, v, o of every block). Every variant has its own copy of the model and its own
Trainer over those 4 rows at batch size 4, so every step trains on the same batch; no evaluation, no checkpoints,
no progress bars, the same TrainingArguments (training.sft_trainer.sft_arguments) everywhere:
- trl:         plain `trl.SFTTrainer(model, args, peft_config=<the same LoraConfig>)`;
- tunescope:   tunescope's SFT trainer as `tunescope sft --strategy lora` builds it (strategy.prepare, its
               optimizer and callbacks, build_sft_trainer: divergence guard, metrics log; run without a KV cache);
- diagnostics: the same plus a DiagnosticsCallback on a probe of as many examples as one batch (2 batches of half
               the batch size; `tunescope sft`'s defaults draw 2 x 16 probe examples for its batch of 32), firing
               every 2nd step so one round measures a step with and one without a measurement;
- sift:        the same as tunescope with `--strategy sift` on the same q, k, v, o and the largest rate whose k
               (sum over targets of floor(rate * numel) + 1) does not exceed LoRA's trainable count.

Threads: 1 by default (threads=N to change; the peak-RSS processes use the same). On the project's shared 2-core
machine two intra-op threads contend with other jobs and spin at every barrier, which inflated both wall and CPU
time of a step several-fold and made repeats disagree by 5x (see docs/sft.md#benchmark); one thread does not.

Timing: `rounds` rounds (default 5); in each round every variant in turn runs `trainer.train()` for `steps`
optimizer steps (default 1; the diagnostics variant 2: one without and one with a measurement), so load on a shared
machine hits all variants alike. A step's time runs from the Trainer's on_step_begin to the next one (the last step
of a call: to on_train_end): forward, backward, optimizer and scheduler, callbacks, logging, the next batch. No
separate warm-up: SIFT selects its mask in its first call's on_train_begin (not timed), and the median over the
rounds drops one slow first step. Wall-time ratios (medians over the timed steps):
- step_ratio_vs_trl = tunescope_step_s / trl_step_s (goal <= 1.05);
- diagnostics_overhead_ratio = ((N - 1) * idle + fire) / (N * idle), N = every (default 50): DiagnosticsCallback
  every N steps, amortised, with idle / fire the diagnostics variant's own steps without / with a measurement
  (goal <= 1.1);
- sift_step_ratio_vs_lora = sift_step_s / tunescope_step_s (goal <= 1.0);
and the same three from CPU seconds (`*_cpu`: time.process_time of the step, far less sensitive to other jobs than
wall time). Bytes and memory:
- sift_state_ratio_vs_lora = training-state bytes after the timed steps, SIFT / LoRA, counted alike
  (strategies/sift/accounting.py: optimizer state + what the strategy keeps beyond the pre-trained weights;
  goal <= 1.25);
- sift_peak_rss_ratio_vs_lora: peak RSS of a fresh process per variant (spawned at the start, both running while
  this one loads; timing waits for them) that loads the task, then builds the variant and trains 2 steps, sampled
  every ~1 ms; `*_peak_extra` = each peak above the RSS once the model is loaded. memory=false skips it;
  quick=true is rounds=1 memory=false.
"""

from __future__ import annotations

import copy
import dataclasses
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from tunescope.bench import BENCHMARKS
from tunescope.bench._rss import peak_rss
from tunescope.errors import UserError

VARIANTS = ("trl", "tunescope", "diagnostics", "sift")
FIRE_EVERY = 2  # the diagnostics variant measures every 2nd step: each round times one step with, one without
DEFAULTS = {"model": "smollm2-135m", "data": "quartz", "batch_size": 4, "max_length": 96, "rounds": 5, "steps": 1,
            "every": 50, "rank": 8, "memory": True, "quick": False, "threads": 1, "limit": 40}
RSS_STEPS = 2  # steps of a peak-RSS process (the first one includes SIFT's mask selection)


class StepClock(TrainerCallback):
    """Wall and CPU seconds of each optimizer step of the last `train()` call: from its on_step_begin to the next one
    (the last step: to on_train_end), keyed by the step's 1-based number in that call. CPU = time.process_time, all
    of this process's threads: what the step computed, much less sensitive than wall time to other jobs on a shared
    machine (not immune: they still compete for caches and memory bandwidth)."""

    def __init__(self):
        self.marks: list[tuple[int, float, float]] = []

    def _mark(self, step: int) -> None:
        self.marks.append((step, time.perf_counter(), time.process_time()))

    def on_train_begin(self, args, state, control, **kwargs):
        self.marks = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._mark(state.global_step + 1)

    def on_train_end(self, args, state, control, **kwargs):
        self._mark(0)

    def durations(self) -> list[tuple[int, float, float]]:
        """[(step, wall seconds, CPU seconds)] of the last call."""
        return [(step, w1 - w0, c1 - c0) for (step, w0, c0), (_, w1, c1) in zip(self.marks, self.marks[1:])]


def _options(options: dict) -> dict:
    opts = {**DEFAULTS, **options}
    if opts["quick"]:
        opts.update(rounds=1, memory=False)
    bad = [k for k in ("batch_size", "max_length", "rounds", "steps", "every", "rank", "limit") if int(opts[k]) < 1]
    if bad or int(opts["batch_size"]) < 2:
        key = bad[0] if bad else "batch_size"
        raise UserError(f"bad benchmark option {key}={opts[key]!r} for `tunescope bench sft`: expected a positive "
                        "integer (batch_size >= 2: the probe is 2 batches of half of it)")
    if int(opts["limit"]) < int(opts["batch_size"]):
        raise UserError(f"bad benchmark option limit={opts['limit']!r} for `tunescope bench sft`: expected at least "
                        f"batch_size={opts['batch_size']} examples")
    return opts


def _config(opts: dict):
    """The `tunescope sft` config of the LoRA variants (alpha = 2 r, as the default r 8, alpha 16); max_steps is set
    before every `train()` call."""
    from tunescope.experiments.sft import SFTConfig

    return SFTConfig(model=opts["model"], data=opts["data"], max_length=opts["max_length"],
                     batch_size=opts["batch_size"], limit=opts["limit"], lora_rank=opts["rank"],
                     lora_alpha=2.0 * opts["rank"], max_steps=1, seed=0)


def sift_rate_for(targets: dict[str, torch.nn.Parameter], budget: int) -> float:
    """The largest rate whose SIFT k over `targets` (sum of floor(rate * numel) + 1) is <= `budget` (bisection)."""
    from tunescope.strategies.sift.config import num_selected

    def k_total(rate: float) -> int:
        return sum(num_selected(p.numel(), rate) for p in targets.values())

    if k_total(1e-12) > budget:
        raise UserError(f"cannot match LoRA's {budget:,} trainable parameters with SIFT: even one entry per target "
                        f"tensor ({len(targets)}) is more")
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if k_total(mid) <= budget else (lo, mid)
    return lo


class _Setup:
    """What every variant shares: the task loaded once, the batch rows, the LoRA budget and SIFT's rate."""

    def __init__(self, opts: dict, work: Path):
        import tunescope.tasks.causal_lm  # noqa: F401  (registers the causal-lm task)
        from tunescope.models.layers import default_lora_targets
        from tunescope.strategies.sift.config import resolve_targets
        from tunescope.tasks import TASKS

        self.opts, self.work = opts, work
        self.config = _config(opts)
        self.task = TASKS.get("causal-lm")
        self.loaded = self.task.load(self.config)
        self.train = self.loaded.tokenized["train"].select(range(opts["batch_size"]))
        self.model = self.loaded.model
        self.targets = default_lora_targets(self.model)
        sift_targets = resolve_targets(self.model, self.targets)  # the same modules' weights
        self.lora_trainable = opts["rank"] * sum(p.shape[0] + p.shape[1] for p in sift_targets.values())
        self.sift_rate = sift_rate_for(sift_targets, self.lora_trainable)
        self.share = False  # True: the one variant built takes the loaded model itself (no copy)

    def fresh_model(self):
        return self.model if self.share else copy.deepcopy(self.model)


def _no_saving(trainer) -> None:
    """No checkpoints (the bench times steps, not disk writes) and nothing printed (stdout holds the result)."""
    from transformers import PrinterCallback, ProgressCallback
    from transformers.trainer_utils import SaveStrategy

    trainer.args.save_strategy = SaveStrategy.NO
    trainer.args.disable_tqdm = True
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)


def build_variant(name: str, setup: _Setup, clock: StepClock):
    """(trainer, kept) for one variant: its Trainer over the batch rows and what its strategy keeps
    (accounting.state_bytes' `kept`: LoRA's adapter tensors, SIFT's bookkeeping tensors)."""
    from tunescope.strategies import STRATEGIES
    from tunescope.strategies.base import StrategyContext, learning_rate_for
    from tunescope.strategies.sift.accounting import adapter_tensors
    from tunescope.training.sft_trainer import build_sft_trainer, sft_arguments

    out = setup.work / name
    columns = ["input_ids", "labels"]
    if name == "trl":
        from peft import TaskType
        from trl import SFTTrainer

        from tunescope.data.sft_prepare import quiet_maps
        from tunescope.strategies.lora import lora_config_for

        model = setup.fresh_model()
        cfg = setup.config
        lora = lora_config_for(model, rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                               task_type=TaskType.CAUSAL_LM)
        args = sft_arguments(cfg, out, learning_rate_for(STRATEGIES.get("lora"), cfg), has_eval=False)
        with quiet_maps():
            trainer = SFTTrainer(model=model, args=args, train_dataset=setup.train.select_columns(columns),
                                 data_collator=setup.loaded.collator, processing_class=setup.loaded.tokenizer,
                                 peft_config=lora, callbacks=[clock])
        _no_saving(trainer)
        return trainer, adapter_tensors(trainer.model)
    strategy_name = "sift" if name == "sift" else "lora"
    config = setup.config if name != "sift" else dataclasses.replace(
        setup.config, strategy="sift", sift_rate=setup.sift_rate, sift_targets=list(setup.targets))
    strategy = STRATEGIES.get(strategy_name)
    lr = learning_rate_for(strategy, config)
    results: dict = {}
    ctx = StrategyContext(config=config, tokenizer=setup.loaded.tokenizer, data=setup.loaded.data,
                          tokenized={"train": setup.train}, collator=setup.loaded.collator, results=results,
                          out_dir=out, learning_rate=lr, task=setup.task)
    model = strategy.prepare(setup.fresh_model(), ctx)
    callbacks = [*strategy.callbacks(model, ctx)]
    if name == "diagnostics":
        from tunescope.diagnostics.options import draw_probe
        from tunescope.training.callbacks import DiagnosticsCallback

        probe_config = dataclasses.replace(config, probe_batches=2, probe_batch_size=setup.opts["batch_size"] // 2)
        probe = draw_probe(probe_config, setup.loaded.tokenized["train"], setup.loaded.tokenizer,
                           collate=setup.loaded.collator)
        callbacks.append(DiagnosticsCallback(probe, every_n_steps=FIRE_EVERY))
    trainer = build_sft_trainer(model, setup.loaded.tokenizer, {"train": setup.train}, setup.loaded.collator, config,
                                out, learning_rate=lr, strategy=strategy, optimizer=strategy.create_optimizer(model, ctx),
                                callbacks=[*callbacks, clock])
    _no_saving(trainer)
    if name == "sift":
        from tunescope.strategies.sift.strategy import engine_of

        return trainer, engine_of(model)  # its bookkeeping tensors exist once the mask is selected: read them later
    return trainer, adapter_tensors(model)


def _train(trainer, steps: int, tunescope_run: bool) -> None:
    from tunescope.training.sft_trainer import no_kv_cache

    trainer.args.max_steps = steps
    if tunescope_run:
        with no_kv_cache(trainer.model):
            trainer.train()
    else:
        trainer.train()


def _kept(kept) -> list[torch.Tensor]:
    """The strategy's kept tensors now (SIFT's are allocated when its mask is selected)."""
    return kept.bookkeeping_tensors() if hasattr(kept, "bookkeeping_tensors") else list(kept)


def _trainable(trainer, kept) -> int:
    if hasattr(kept, "selected_params"):
        return kept.selected_params
    return sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


def _rss_child(name: str, opts: dict, threads: int, queue) -> None:
    """In a fresh process: load the task, then the peak RSS while building `name` and training RSS_STEPS steps."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        setup = _Setup(opts, Path(tmp))
        with peak_rss() as peak:
            start = peak[0]
            setup.share = True
            trainer, _ = build_variant(name, setup, StepClock())
            _train(trainer, RSS_STEPS, True)
    queue.put((name, peak[0], peak[0] - start))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@BENCHMARKS.register("sft")
def bench_sft(options: dict) -> dict:
    """Options: model, data, batch_size 4, max_length 96, limit 40 (rows per split loaded), rounds 5, steps 1 (per
    round and variant), every 50 (N of the amortised diagnostics), rank 8, memory true, quick false, threads 1 (0:
    torch's current setting)."""
    opts = _options(options)
    previous_threads = torch.get_num_threads()
    if opts["threads"]:
        torch.set_num_threads(int(opts["threads"]))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return _measure(opts, Path(tmp))
    finally:
        torch.set_num_threads(previous_threads)


def _start_rss_processes(opts: dict) -> list:
    """The two peak-RSS processes (LoRA, SIFT), started at once: they run while this process loads and builds its
    variants, and are waited for before any step is timed."""
    ctx = mp.get_context("spawn")
    started = []
    for name in ("tunescope", "sift"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_rss_child, args=(name, opts, torch.get_num_threads(), queue))
        proc.start()
        started.append((name, proc, queue))
    return started


def _rss_results(started: list) -> dict:
    out = {}
    for name, proc, queue in started:
        proc.join()  # the child puts three numbers: nothing large waits in the pipe
        if proc.exitcode != 0:
            raise RuntimeError(f"the peak-RSS process for {name} failed (exit code {proc.exitcode})")
        _, peak, extra = queue.get(timeout=60)
        label = "lora" if name == "tunescope" else name
        out[f"{label}_peak_rss"], out[f"{label}_peak_extra"] = peak, extra
    out["sift_peak_rss_ratio_vs_lora"] = out["sift_peak_rss"] / out["lora_peak_rss"]
    return out


def _time_rounds(built: dict, clocks: dict, opts: dict) -> tuple[dict, dict]:
    """Median wall and CPU seconds per step: "trl", "tunescope", "sift", and the diagnostics variant's "idle" /
    "fire" steps. Each round runs every variant in turn: `steps` steps, the diagnostics variant FIRE_EVERY."""
    wall: dict[str, list[float]] = {"trl": [], "tunescope": [], "idle": [], "fire": [], "sift": []}
    cpu: dict[str, list[float]] = {key: [] for key in wall}
    for _ in range(opts["rounds"]):
        for name, (trainer, _) in built.items():
            _train(trainer, FIRE_EVERY if name == "diagnostics" else opts["steps"], name != "trl")
            for step, seconds, cpu_seconds in clocks[name].durations():
                key = name if name != "diagnostics" else ("fire" if step % FIRE_EVERY == 0 else "idle")
                wall[key].append(seconds)
                cpu[key].append(cpu_seconds)
    return {k: _median(v) for k, v in wall.items()}, {k: _median(v) for k, v in cpu.items()}


def _ratios(med: dict, every: int, suffix: str) -> dict:
    """The three time ratios from medians `med` (wall or CPU seconds), keys ending in `suffix`."""
    return {f"step_ratio_vs_trl{suffix}": med["tunescope"] / med["trl"],
            f"diagnostics_overhead_ratio{suffix}": ((every - 1) * med["idle"] + med["fire"]) / (every * med["idle"]),
            f"sift_step_ratio_vs_lora{suffix}": med["sift"] / med["tunescope"]}


def _measure(opts: dict, work: Path) -> dict:
    from tunescope.strategies.sift.accounting import state_bytes

    started = _start_rss_processes(opts) if opts["memory"] else []
    setup = _Setup(opts, work)
    clocks = {name: StepClock() for name in VARIANTS}
    built = {name: build_variant(name, setup, clocks[name]) for name in VARIANTS}
    setup.model = None  # every variant has its own copy now
    memory = _rss_results(started) if started else {}
    # No separate warm-up: SIFT selects its mask in its first call's on_train_begin (not timed), and the median of
    # `rounds` (default 5) steps drops one slow first step.
    wall, cpu = _time_rounds(built, clocks, opts)
    lora_trainer, lora_kept = built["tunescope"]
    sift_trainer, sift_engine = built["sift"]
    lora_state = state_bytes(getattr(lora_trainer.optimizer, "optimizer", lora_trainer.optimizer), _kept(lora_kept))
    sift_state = state_bytes(getattr(sift_trainer.optimizer, "optimizer", sift_trainer.optimizer), _kept(sift_engine))
    every = opts["every"]
    batch = setup.loaded.collator([setup.train[i] for i in range(len(setup.train))])["input_ids"]
    return {
        "model": opts["model"], "data": opts["data"], "batch": f"{batch.shape[0]}x{batch.shape[1]}",
        "threads": torch.get_num_threads(), "rounds": opts["rounds"], "steps": opts["steps"],
        **_ratios(wall, every, ""),
        "sift_state_ratio_vs_lora": sift_state / lora_state,
        **{k: v for k, v in memory.items() if k == "sift_peak_rss_ratio_vs_lora"},
        **_ratios(cpu, every, "_cpu"),
        "trl_step_s": wall["trl"], "tunescope_step_s": wall["tunescope"], "sift_step_s": wall["sift"],
        "diagnostics_every": every, "diagnostics_idle_step_s": wall["idle"], "diagnostics_fire_step_s": wall["fire"],
        **{f"{'diagnostics_' if key in ('idle', 'fire') else ''}{key}_step_cpu_s": value for key, value in cpu.items()},
        "lora_rank": opts["rank"], "lora_trainable": _trainable(lora_trainer, lora_kept),
        "sift_rate": setup.sift_rate, "sift_trainable": _trainable(sift_trainer, sift_engine),
        "lora_state_bytes": lora_state, "sift_state_bytes": sift_state,
        **{k: v for k, v in memory.items() if k != "sift_peak_rss_ratio_vs_lora"},
    }
