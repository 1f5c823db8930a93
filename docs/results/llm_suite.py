"""The LLM reproductions on smollm2-135m (docs/results/llm_sift.md, llm_basins.md, llm_inflection.md): every run is
one `tunescope` command, listed here, so the pages can print them exactly.

    .venv/bin/python docs/results/llm_suite.py run runs/exp/llm --queue A   # and B, C in other processes
    .venv/bin/python docs/results/llm_suite.py list runs/exp/llm            # the commands, one per line
    .venv/bin/python docs/results/llm_suite.py run runs/exp/llm --only full-s0,lora-s0   # just these jobs

Two queues run side by side (one thread each on a 2-core machine); a job whose inputs come from another job waits
for that job's results.json. A finished job (results.json present) is skipped, an interrupted `sft` job resumes
from its last checkpoint, so the suite can be stopped and continued.

Scale (one CPU session): quartz, 128 examples per split, <= 128 tokens, batch 8, 32 optimizer steps (2 epochs);
retention on 8 held-out news_text documents; landscapes on 32 blocks of 64 tokens (basic) or the completion
tokens of 48 test examples (specific).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODEL = "smollm2-135m"
LAYERS = 30
SFT = ["--model", MODEL, "--data", "quartz", "--limit", "128", "--max-length", "128", "--batch-size", "8",
       "--max-steps", "32", "--eval-batch-size", "32", "--logging-steps", "4", "--retention-docs", "8",
       "--save-total-limit", "1", "-q"]
# LoRA r = 8 on q, v (the paper's setting): 30 layers x 8 x ((576 + 576) + (576 + 192)) = 460,800 parameters.
LORA_QV = ["--strategy", "lora", "--lora-targets", "q_proj,v_proj", "--lora-rank", "8", "--lora-alpha", "16"]
# SIFT on q, k, v, o at LoRA's budget: k = floor(rate * numel) + 1 per tensor = 5760 (q, o) + 1920 (k, v) per
# layer = 460,800 entries.
SIFT_RATE = "0.01736"
BAND_WIDTH = 8  # lora-inflection's default width ceil(30 / 4); equal parameters: rank 8 * 30 / 8 = 30
BAND_RANK = 8 * LAYERS // BAND_WIDTH
LANDSCAPE = ["--directions", "random,worst", "--num-directions", "4", "--num-worst", "1", "--worst-steps", "3",
             "--eval-batch-size", "16", "--curve-points", "9", "-q"]
BASIC = ["--data", "news_text", "--eval-examples", "32", "--max-length", "64"]
# 48 of the 128 test examples (144 completion tokens): a full test-split evaluation is ~4x a basic one, too slow
# for ~100 evaluations per landscape on one CPU thread.
SPECIFIC = ["--data", "quartz", "--limit", "128", "--eval-examples", "48", "--max-length", "128"]
GO_SIGMA_PAPER = 0.01


def _short(argv: list[str]) -> list[str]:
    """The SFT arguments with 8 steps on 32 examples per split and no retention check (memory runs)."""
    out = list(argv)
    for flag, value in (("--max-steps", "8"), ("--limit", "32"), ("--retention-docs", "0")):
        out[out.index(flag) + 1] = value
    return out


def random_layer_sets(draws: int = 3, width: int = BAND_WIDTH, first: int = 1) -> list[list[int]]:
    """`draws` sets of `width` blocks out of LAYERS, uniformly without replacement (numpy seeds first, first + 1,
    ...): seed 0's arms use draws 1-3, seed 1's draws 4-6, so the chance distribution has six placements."""
    return [sorted(np.random.default_rng(i).choice(LAYERS, width, replace=False).tolist())
            for i in range(first, first + draws)]


def go_sigma(root: Path) -> float:
    """The paper's sigma 0.01, unless it lies outside half the pre-trained model's basic basin (then half the
    median random radius): noise beyond the basin trains a broken model, not a perturbed one."""
    basin = json.loads((root / "basin-basic-pretrained" / "results.json").read_text())
    radius = basin["basin"]["random"]["median_radius"]
    return GO_SIGMA_PAPER if radius >= 2 * GO_SIGMA_PAPER else float(f"{radius / 2:.2g}")


def jobs(root: Path) -> list[dict]:
    """name, queue, needs (jobs whose results it reads), argv (lazy: may read `needs`)."""
    out: list[dict] = []

    def job(name, queue, argv, needs=()):
        out.append({"name": name, "queue": queue, "needs": list(needs), "argv": argv})

    job("diagnose-pretrained", "A", lambda: ["diagnose", "--model", MODEL, "--data", "quartz", "--task", "causal-lm",
                                             "--limit", "128", "--max-length", "128", "--probe-batches", "2",
                                             "--probe-batch-size", "16", "-q"])
    job("basin-basic-pretrained", "A", lambda: ["landscape", "--model", MODEL, *BASIC, *LANDSCAPE])
    for seed, queue in ((0, "A"), (1, "B")):
        s = ["--seed", str(seed)]
        job(f"full-s{seed}", queue, lambda s=s: ["sft", *SFT, *s, "--strategy", "full", "--eval-before",
                                                 "--diagnose"])
        job(f"lora-s{seed}", queue, lambda s=s: ["sft", *SFT, *s, *LORA_QV, "--diagnose"])
        job(f"sift-s{seed}", queue, lambda s=s: ["sft", *SFT, *s, "--strategy", "sift", "--sift-rate", SIFT_RATE])
        job(f"sift-random-s{seed}", queue, lambda s=s: ["sft", *SFT, *s, "--strategy", "sift", "--sift-rate",
                                                        SIFT_RATE, "--sift-mask", "random"])
    for seed, queue in ((0, "B"), (1, "A")):
        job(f"go-full-s{seed}", queue, lambda seed=seed: ["sft", *SFT, "--seed", str(seed), "--strategy", "full",
                                                          "--noise-sigma", str(go_sigma(root))],
            needs=["basin-basic-pretrained"])
    band = ["--lora-targets", "q_proj,v_proj", "--lora-rank", str(BAND_RANK), "--lora-alpha", str(2 * BAND_RANK)]
    for seed, queue in ((0, "A"), (1, "B")):
        s = ["--seed", str(seed)]
        job(f"inflection-band-s{seed}", queue, lambda s=s: ["sft", *SFT, *s, "--strategy", "lora-inflection",
                                                            "--inflection-width", str(BAND_WIDTH), *band])
        for i, layers in enumerate(random_layer_sets(first=1 + 3 * seed), 1):
            job(f"inflection-random{i}-s{seed}", queue,
                lambda s=s, layers=layers: ["sft", *SFT, *s, "--strategy", "lora", "--layers",
                                            ",".join(map(str, layers)), *band])
    for seed, queue in ((0, "A"), (1, "B")):
        job(f"sparsity-quartz{'' if seed == 0 else '-s1'}", "A" if seed == 0 else "C",
            lambda seed=seed: ["sparsity", "--model", MODEL, "--data", "quartz", "--max-length", "128",
                               "--batch-size", "8", "--batches", "2", *(["--seed", "1"] if seed else []), "-q"])
    # Peak RSS of training alone, side by side: short runs without the evaluations and diagnoses before training
    # (the RSS high-water mark is reset before the first step; results.json memory.peak_rss_scope = training).
    arms = {"full": ["--strategy", "full"], "lora": LORA_QV, "sift": ["--strategy", "sift", "--sift-rate", SIFT_RATE],
            "sift-random": ["--strategy", "sift", "--sift-rate", SIFT_RATE, "--sift-mask", "random"]}
    for arm, extra in arms.items():
        job(f"memory-{arm}", "C", lambda extra=extra: ["sft", *_short(SFT), "--seed", "0", *extra])
    # The basins on seed 0 only: a specific-basin landscape is ~100 evaluations, 35-45 minutes of one CPU thread.
    # Seed 1 has the plain and GO SFT runs (task, loss, retention) but no landscapes.
    for run, queue in (("full-s0", "A"), ("go-full-s0", "B")):
        job(f"basin-specific-{run}", queue,
            lambda run=run: ["landscape", "--model", str(root / run), *SPECIFIC, *LANDSCAPE[:-1], "--directions",
                             "random,worst,sft", "--base", MODEL, "-q"], needs=[run])
    job("basin-basic-full-s0", "B", lambda: ["landscape", "--model", str(root / "full-s0"), *BASIC, *LANDSCAPE[:-1],
                                             "--directions", "random,sft", "--base", MODEL, "-q"],
        needs=["full-s0"])
    return out


def command(root: Path, j: dict) -> list[str]:
    argv = j["argv"]()
    if "--directions" in argv:  # a later --directions overrides the shared one: keep the last only
        idx = [i for i, a in enumerate(argv) if a == "--directions"]
        for i in reversed(idx[:-1]):
            del argv[i:i + 2]
    return ["tunescope", *argv, "--out", str(root / j["name"])]


def done(root: Path, name: str) -> bool:
    return (root / name / "results.json").exists()


def run(root: Path, queue: str | None, only: set[str] | None = None) -> None:
    """Run the unfinished jobs of `queue` (every queue when None), or only the named ones, one after another."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    exe = str(Path(sys.executable).with_name("tunescope"))
    for j in jobs(root):
        if (queue and j["queue"] != queue) or (only and j["name"] not in only) or done(root, j["name"]):
            continue
        while not all(done(root, n) for n in j["needs"]):
            time.sleep(20)
        argv = command(root, j)
        out = root / j["name"]
        if out.exists() and any(out.iterdir()):
            argv += ["--resume"] if argv[1] == "sft" else ["--overwrite"]
        print(f"[{time.strftime('%H:%M:%S')}] {' '.join(argv)}", flush=True)
        start = time.time()
        rc = subprocess.run([exe, *argv[1:]], env=env).returncode
        print(f"[{time.strftime('%H:%M:%S')}] {j['name']}: rc {rc}, {time.time() - start:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["run", "list"])
    ap.add_argument("root", type=Path)
    ap.add_argument("--queue", choices=["A", "B", "C"])
    ap.add_argument("--only", help="comma-separated job names: run just these (in the suite's order)")
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    if args.action == "list":
        for j in jobs(args.root):
            try:
                print(f"{j['name']}: OMP_NUM_THREADS=1 {' '.join(command(args.root, j))}")
            except FileNotFoundError:
                print(f"{j['name']}: (waits for {', '.join(j['needs'])})")
        return
    only = set(args.only.split(",")) if args.only else None
    if only and (unknown := only - {j["name"] for j in jobs(args.root)}):
        ap.error(f"--only: unknown job(s) {', '.join(sorted(unknown))} (see the `list` action)")
    if only:
        run(args.root, args.queue, only)
        return
    for q in [args.queue] if args.queue else ["A", "B", "C"]:
        run(args.root, q)


if __name__ == "__main__":
    main()
