"""The errors of the priors and the pipeline (importable without torch)."""
from __future__ import annotations

from pathlib import Path


class ReconstructionError(RuntimeError):
    """A reconstruction that cannot produce a scene; ``str(err)`` is a one-line human reason."""


class Cancelled(ReconstructionError):
    """The caller's ``cancel()`` returned True between two stages."""


class MissingWeightsError(ReconstructionError):
    """A model's weights are not on this machine; names the model, where they were looked for and the fix."""

    def __init__(self, model: str, expected: str | Path, profile: str, detail: str = "") -> None:
        self.model = model
        self.expected = str(expected)
        self.profile = profile
        msg = (f"missing weights for {model}: expected at {expected}"
               f"{' (' + detail + ')' if detail else ''}; fetch them with "
               f"`dpa-weights download --profile {profile}` (check with `dpa-weights check --profile {profile}`)")
        super().__init__(msg)
