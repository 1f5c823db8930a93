"""The top-level notebook API: every advertised name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import tunescope


def test_every_public_name_resolves():
    for name in tunescope.__all__:
        assert getattr(tunescope, name) is not None, name


def test_import_tunescope_does_not_import_torch():
    code = "import sys, tunescope; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
