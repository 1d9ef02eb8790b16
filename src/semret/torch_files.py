"""Files of torch tensors that semret writes: written atomically, read back with clear errors.

Every trained thing semret keeps (hash model checkpoints, feature classifiers, backbone weights) is a
``torch.save`` file. Writing goes through a ``.partial`` file renamed into place, so an interrupted
write never leaves a half-written file under the real name. semret's own formats are dicts with a
``format`` name and a ``format_version``; `read_semret_file` checks both, and turns a missing,
corrupt or foreign file into a `SemretError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from semret import __version__
from semret.errors import SemretError


def save_atomically(path: str | Path, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` through a temporary file (parent folders are created)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(file.name + ".partial")
    torch.save(obj, temporary)
    temporary.replace(file)
    return file


def save_semret_file(path: str | Path, file_format: str, version: int, contents: dict[str, Any]) -> Path:
    """Save ``contents`` with the format's name and version and semret's version."""
    payload = {"format": file_format, "format_version": version, "semret_version": __version__, **contents}
    return save_atomically(path, payload)


def load_torch_file(path: str | Path, what: str) -> Any:
    """What ``torch.load`` (tensors only, on the CPU) reads from ``path``; a missing or unreadable
    file is a `SemretError` naming it and ``what`` it should have been."""
    file = Path(path)
    if not file.is_file():
        raise SemretError(f"no {what} at {file}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SemretError(f"{file}: not a readable {what} (corrupt or truncated?): {exc}") from exc


def read_semret_file(
    path: str | Path, file_format: str, version: int, what: str, required: Iterable[str] = ()
) -> dict[str, Any]:
    """The contents of a file written by `save_semret_file` in ``file_format`` (at most ``version``)
    with the ``required`` keys; ``what`` names the kind of file in errors ("hash model checkpoint")."""
    file = Path(path)
    payload = load_torch_file(file, what)
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise SemretError(f"{file}: not a semret {what}")
    found = payload.get("format_version")
    if not isinstance(found, int) or found > version:
        raise SemretError(f"{file}: {what} format {found!r} is not one this semret reads ({version}): upgrade semret")
    for key in required:
        if key not in payload:
            raise SemretError(f"{file}: the {what} has no {key!r}")
    return payload
