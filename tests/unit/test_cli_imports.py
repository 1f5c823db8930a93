"""`tunescope --help` stays light: building the parser and every `--help` import no heavy library.

The check runs in a fresh interpreter (this test process has imported torch already). The help text that comes from
registries (strategy names, per-layer metrics) is written out in light modules; the tests below compare those lists
with the registries, so a new strategy or metric cannot be left out of --help silently.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What building the help must not load (numpy is allowed: cheap, and not one of these).
HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "sklearn", "scipy", "matplotlib", "pandas")

_PROBE = """
import argparse, contextlib, io, json, sys
import tunescope.cli as cli

HEAVY = {heavy!r}
loaded = lambda: sorted(m for m in HEAVY if m in sys.modules)
report = {{}}

parser = cli.build_parser()
report["after build_parser"] = loaded()

def command_lines(p, prefix=()):
    # every subcommand path of the parser, nested ones (assets list) included
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_lines(sub, (*prefix, name))

lines = [(), *command_lines(parser)]
codes = {{}}
for argv in lines:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        codes[" ".join(argv)] = (cli.main([*argv, "--help"]), out.getvalue().startswith("usage: tunescope"))
report["after every --help"] = loaded()
with contextlib.redirect_stdout(io.StringIO()):
    codes["-q bench"] = (cli.main(["-q", "bench"]), True)  # no NAME: the list of benchmarks
report["after -q bench"] = loaded()
report["codes"] = codes
print(json.dumps(report))
"""


def test_building_the_parser_and_every_help_import_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY)], capture_output=True, text=True,
                         check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    codes = report.pop("codes")
    assert report == {"after build_parser": [], "after every --help": [], "after -q bench": []}
    assert len(codes) >= 20  # top level + every command + assets list / fetch + bench listing
    assert all(code == [0, True] for code in codes.values()), codes


def test_strategy_names_for_help_match_the_registry():
    from tunescope.strategies import STRATEGIES
    from tunescope.strategies.options import STRATEGY_NAMES

    assert STRATEGY_NAMES == tuple(STRATEGIES.names())


def test_metric_names_for_help_match_the_registry():
    from tunescope.cli.commands.diagnose import (
        HELP_SELECTION_METRICS,
        _registered_metrics,
    )
    from tunescope.diagnostics.layerwise import SELECTION_METRICS
    from tunescope.diagnostics.metrics import layer_metrics

    # with the registry loaded, --help lists exactly its recorded metrics
    assert _registered_metrics() == ", ".join(f"{m.name} ({m.label})" for m in layer_metrics(recorded_only=True))
    assert HELP_SELECTION_METRICS == tuple(SELECTION_METRICS)


def test_moved_classes_keep_their_public_import_paths():
    """The light modules hold the classes; the old paths are the same objects, and the lazy packages resolve."""
    from tunescope.experiments import (
        finetune,
        finetune_config,
        pretrain,
        pretrain_config,
        sft,
        sft_config,
    )
    from tunescope.strategies import linear_probe, lora, options, sift
    from tunescope.tasks import TASKS, SequenceClassification
    from tunescope.training import noise
    from tunescope.training import options as training_options

    assert lora.LoraOptions is options.LoraOptions
    assert linear_probe.LinearProbeOptions is options.LinearProbeOptions
    assert noise.NoiseOptions is training_options.NoiseOptions
    assert finetune.FinetuneConfig is finetune_config.FinetuneConfig
    assert sft.SFTConfig is sft_config.SFTConfig and sft.refuse_head_strategy is sft_config.refuse_head_strategy
    assert pretrain.PretrainConfig is pretrain_config.PretrainConfig
    assert sift.SiftEngine.__module__ == "tunescope.strategies.sift.sparse"
    assert TASKS.names() == ["causal-lm", "classification"]
    assert isinstance(TASKS.get("classification"), SequenceClassification)


def test_bench_cli_reports_medians_and_their_max(monkeypatch):
    """The `cli` benchmark's bookkeeping, on made-up timings (the timing itself is the benchmark's job)."""
    import tunescope.bench.cli as bench_cli
    from tunescope.cli import COMMAND_MODULES

    calls: dict[tuple, int] = {}

    def fake_seconds(argv: list[str]) -> float:
        key = tuple(argv)
        calls[key] = calls.get(key, 0) + 1
        # repeat r of `python -m tunescope [CMD] --help` takes (len(argv) + r) / 10 s: median over r = 0, 1, 2 is
        # (len(argv) + 1) / 10; `python -c pass` takes 0.01 s.
        return 0.01 if argv == ["-c", "pass"] else (len(argv) + calls[key] - 1) / 10

    monkeypatch.setattr(bench_cli, "_seconds", fake_seconds)
    result = bench_cli.bench_cli({"repeats": 3})
    commands = [m.rsplit(".", 1)[-1] for m in COMMAND_MODULES]
    assert list(result["help_seconds"]) == ["tunescope --help", *(f"tunescope {c} --help" for c in commands)]
    assert result["help_seconds"]["tunescope --help"] == 0.4  # argv -m tunescope --help: 3 items
    assert all(result["help_seconds"][f"tunescope {c} --help"] == 0.5 for c in commands)
    assert result["help_seconds_max"] == 0.5
    assert result["python_startup_seconds"] == 0.01 and result["repeats"] == 3
    assert set(calls.values()) == {3}  # every command line ran once per repeat
