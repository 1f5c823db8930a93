"""`tunescope --help` and every subcommand's --help render (argparse %-formatting bugs show up here)."""

from __future__ import annotations

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
