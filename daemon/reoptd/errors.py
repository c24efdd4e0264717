"""Every error reoptd raises on purpose.

    ReoptdError
     ├── PolicyError          a policy file is malformed (names file, line and field)
     ├── DataError            a data batch is unusable (names the source and column)
     │    └── EmptyWindow     a window holds no rows; the check is skipped, not failed
     ├── ModelNotFound        no model or policy with that name
     ├── VersionNotFound      no such version of a model
     ├── ArtifactError        an artifact is missing or its sha256 does not match
     ├── StoreUnavailable     the store's database cannot be reached or failed (names it)
     ├── DuplicateIds         ingested rows whose ids were stored before; nothing was stored
     ├── OptimizeError        a re-optimization step could not produce a challenger
     └── AdoptError           a model to adopt does not fit its policy (names the columns)

The CLI prints ``str(error)`` for any of them and exits non-zero; nothing here is meant to reach
the user as a traceback.
"""

from __future__ import annotations


class ReoptdError(Exception):
    """Base of every error reoptd raises on purpose."""


class PolicyError(ReoptdError):
    """A policy file is malformed. ``problems`` lists each one as ``file:line: field: message``;
    ``model`` is the model it names, when that much of it could be read."""

    def __init__(self, path: str, problems: list[str], *, model: str | None = None) -> None:
        self.path = path
        self.problems = problems
        self.model = model
        super().__init__("\n".join(problems))


class DataError(ReoptdError):
    """A data batch cannot be checked. ``column`` names the offending column when there is one."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        self.column = column
        super().__init__(message)


class EmptyWindow(DataError):
    """The window holds no rows (or too few): the check is skipped with this reason."""


class ModelNotFound(ReoptdError):
    def __init__(self, name: str, hint: str = "") -> None:
        self.name = name
        super().__init__(f"no model named {name!r}" + (f" ({hint})" if hint else ""))


class VersionNotFound(ReoptdError):
    def __init__(self, model: str, version: int) -> None:
        self.model = model
        self.version = version
        super().__init__(f"model {model!r} has no version {version}")


class ArtifactError(ReoptdError):
    """An artifact is missing, unreadable, or its content does not match its sha256."""


class StoreUnavailable(ReoptdError):
    """The store's database cannot be reached, or failed under a read or write. The message names
    the database (its URL with the password hidden) and the driver's error."""


class DuplicateIds(ReoptdError):
    """A batch of ingested rows holds ids stored before (``ids``), or a concurrent batch stored
    one of them first (``concurrent``): nothing of the batch was stored."""

    def __init__(self, model: str, ids: list[str], *, concurrent: bool = False) -> None:
        self.model = model
        self.ids = ids
        self.concurrent = concurrent
        shown = ", ".join(repr(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
        what = (
            "an id of the batch was stored meanwhile"
            if concurrent
            else f"ids stored before: {shown}"
        )
        super().__init__(f"model {model!r}: {what}; nothing of the batch was stored")


class OptimizeError(ReoptdError):
    """A re-optimization step failed; the champion stays as it was."""


class AdoptError(ReoptdError):
    """A model offered to ``reoptd models adopt`` cannot serve its policy; nothing was stored."""


class ModelBusy(ReoptdError):
    """Another live process (the daemon, another command) is running a cycle or a run of the
    model."""

    def __init__(self, model: str, holder: str, waited: float) -> None:
        self.model = model
        self.holder = holder
        super().__init__(
            f"model {model!r} is busy: {holder} is running a cycle or a re-optimization of it"
            f" (waited {waited:g} s); try again when it is done"
        )


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none): what an error
    from a library (a driver, Ray) adds to a message of ours."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
