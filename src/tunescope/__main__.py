"""`python -m tunescope ...` is the same as the `tunescope` command."""

from tunescope.cli import entry_point

entry_point()
