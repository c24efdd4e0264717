"""The policy search's own error."""

from __future__ import annotations

from reoptd.errors import ReoptdError


class TuneError(ReoptdError):
    """The policy search cannot run as asked (a study started with other options, no trial
    completed, an impossible pick, an executor it cannot use)."""
