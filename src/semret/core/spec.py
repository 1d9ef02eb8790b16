"""Searcher spec strings: a kind and its parameters in one line, as faiss' index factory names an
index, so that an experiment is data: ``"lsh:n_bits=8,n_tables=8"``, ``"kmeans:n_probe=4,pca_components=50"``,
``"exact"``.

Grammar: ``KIND[:NAME=VALUE[,NAME=VALUE]...]``. Values are read as JSON where they parse
(integers, numbers, ``true``/``false``, ``null``), else kept as text. `format_spec` writes the
canonical form back (parameters sorted by name), which is what results files record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from semret.errors import SemretError

__all__ = ["Spec", "format_spec", "parse_spec"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: the kind and its parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return format_spec(self.kind, self.params)


def parse_value(text: str) -> Any:
    """A spec value: JSON where it parses (numbers, true/false, null), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_spec(text: str, what: str = "spec") -> Spec:
    """``"lsh:n_bits=8,n_tables=8"`` -> ``Spec("lsh", {"n_bits": 8, "n_tables": 8})``; a malformed
    spec is an error that quotes it and says the form."""
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    form = "KIND[:NAME=VALUE,...], e.g. lsh:n_bits=8,n_tables=8"
    if not _NAME.match(kind):
        raise SemretError(f"{what} {text!r}: no kind (use {form})")
    params: dict[str, Any] = {}
    for item in (part.strip() for part in rest.split(",")) if rest.strip() else ():
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals or not _NAME.match(name) or not value.strip():
            raise SemretError(f"{what} {text!r}: {item!r} is not NAME=VALUE (use {form})")
        if name in params:
            raise SemretError(f"{what} {text!r}: {name} is given twice")
        params[name] = parse_value(value.strip())
    return Spec(kind, params)


def format_spec(kind: str, params: dict[str, Any]) -> str:
    """The canonical spec string of a kind and its parameters (sorted by name)."""
    if not params:
        return kind
    return kind + ":" + ",".join(f"{name}={_text(params[name])}" for name in sorted(params))


def _text(value: Any) -> str:
    """A value as `parse_spec` reads it back: bare text where that is unambiguous, else JSON."""
    if isinstance(value, str) and parse_value(value) == value and "," not in value and value.strip() == value:
        return value
    return json.dumps(value)
