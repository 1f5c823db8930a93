"""`tunescope --help` and every subcommand's --help render (argparse %-formatting bugs show up here)."""

from __future__ import annotations

import json

import pytest

from tunescope.cli import COMMAND_MODULES, main


def test_top_level_help(capsys):
    assert main(["--help"]) == 0
    assert "finetune" in capsys.readouterr().out


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_subcommand_help(module, capsys):
    name = module.rsplit(".", 1)[-1]
    assert main([name, "--help"]) == 0
    assert "usage: tunescope" in capsys.readouterr().out


def _parsers(parser, prefix=()):
    """(command path, parser) for every subcommand, nested ones (assets list) included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _parsers(sub, (*prefix, name))


def test_every_command_has_a_description_and_its_help_shows_defaults():
    """A description on every subcommand; every option that takes a value and is not required says its default
    (flags such as --resume are off unless given)."""
    from tunescope.cli import build_parser

    missing = []
    for path, parser in _parsers(build_parser()):
        if not (parser.description or "").strip():
            missing.append(f"{' '.join(path)}: no description")
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and not action.required \
                    and "default" not in (action.help or "").lower():
                missing.append(f"{' '.join(path)} {action.option_strings[0]}: no default in {action.help!r}")
    assert not missing, "\n".join(missing)


def test_bench_alone_and_its_help_list_every_benchmark(capsys):
    from tunescope.bench import BENCHMARK_MODULES

    assert main(["bench"]) == 0
    listed = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in listed] == list(BENCHMARK_MODULES)
    assert all(len(line.split()) > 2 for line in listed)  # name + a summary of several words
    assert main(["bench", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(line in help_text for line in listed)
    assert main(["bench", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == list(BENCHMARK_MODULES)
