"""User-facing errors.

Every error a user can cause (bad input, an unreachable database, a schema that is behind) is a
`SemretError`: the CLI prints its message and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class SemretError(Exception):
    """Base class of errors whose message is meant for the user."""


class DatabaseUnavailableError(SemretError):
    """The database cannot be reached (server down, wrong host, bad credentials...)."""


class SchemaNotCurrentError(SemretError):
    """The database schema is missing or not at the revision this semret needs."""


class NormsFormatError(SemretError):
    """A norms file, or one line of it, does not follow the USF Appendix A format."""

    def __init__(self, path: str, line: int | None, field: str | None, value: str | None, reason: str):
        self.path = path
        self.line = line
        self.field = field
        self.value = value
        self.reason = reason
        where = path if line is None else f"{path}:{line}"
        what = f"field {field}: " if field else ""
        got = f" (value {value!r})" if value is not None else ""
        super().__init__(f"{where}: {what}{reason}{got}")


class UnknownWordError(SemretError):
    """A word that is not in the loaded norms."""

    def __init__(self, word: str, suggestions: list[str]):
        self.word = word
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown word {word!r}: it is not in the loaded norms{hint}")


class NotFoundError(SemretError):
    """Something asked for by name or id that is not there: a collection, image, method or report."""
