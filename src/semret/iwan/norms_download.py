"""Download the USF free-association norms (Appendix A) from the University of South Florida site.

Each file is fetched to a temporary name, parsed to check it really is an Appendix A file, then
moved into place, so an interrupted or bad download never leaves a half file behind. The base URL
can point anywhere (a mirror, or ``file://`` for a local copy).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from semret.errors import NormsFormatError, SemretError
from semret.iwan.norms import read_norms_file

USF_BASE_URL = "http://w3.usf.edu/FreeAssociation/AppendixA/"
USF_FILES = tuple(f"Cue_Target_Pairs.{letters}" for letters in ("A-B", "C", "D-F", "G-K", "L-O", "P-R", "S", "T-Z"))
TIMEOUT_SECONDS = 60


def download_norms(
    destination: str | Path,
    base_url: str = USF_BASE_URL,
    *,
    overwrite: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> list[Path]:
    """Fetch the eight Appendix A files into ``destination``; return their paths.

    Files already there are kept unless ``overwrite``. ``on_file(name)`` is called after each file.
    """
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url.endswith("/") else base_url + "/"
    paths = []
    for name in USF_FILES:
        target = folder / name
        if overwrite or not target.exists():
            _fetch(base + name, target)
        paths.append(target)
        if on_file:
            on_file(name)
    return paths


def _fetch(url: str, target: Path) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            shutil.copyfileobj(response, out)
        try:
            read_norms_file(temporary)
        except NormsFormatError as exc:
            line = f" at line {exc.line}" if exc.line else ""
            raise SemretError(f"{url} is not a USF Appendix A file{line}: {exc.reason}") from exc
        os.replace(temporary, target)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise SemretError(f"cannot download {url}: {reason}") from exc
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
