"""Errors that mean "the user asked for something we cannot do" (exit code 2, one line, no traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2.

    The message must name the bad value and say what is accepted.
    """

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """A name (model, data set, strategy, asset ...) that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}.{hint} Accepted: {', '.join(known)}.")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class TrainingDivergedError(UserError):
    """Training diverged: an optimizer step's loss became NaN / infinite or exploded (training.trainer.
    DivergenceGuard), so the configuration (learning rate, data) is unusable. The run stops and records no
    results.json: its folder keeps config.yaml and metrics.jsonl, whose last line is the `"event": "diverged"`
    record with the same message."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix for an error message, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
