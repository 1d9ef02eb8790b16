"""Every command's --help is readable: options say what they take, flags and arguments show no
Python type (Typer's ``<bool>``, ``<str>``...)."""

from __future__ import annotations

import re

import pytest
import typer

from semret.cli import app

from helpers import ok

PLACEHOLDERS = re.compile(r"<(bool|str|int|float|path|text|integer|list\[[a-z]+\])>", re.IGNORECASE)


def command_paths() -> list[tuple[str, ...]]:
    """Every group and command of ``semret``, as the words that name it."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


def test_every_command_is_reached() -> None:
    paths = {" ".join(path) for path in command_paths()}
    assert {"features extract", "classify", "iwan link", "hash train", "index build", "query iwan", "demo"} <= paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "semret")
def test_help_shows_no_python_types(path: tuple[str, ...]) -> None:
    shown = ok(*path, "--help").output
    assert "--help" in shown
    assert not PLACEHOLDERS.findall(shown), PLACEHOLDERS.findall(shown)


def test_every_option_and_argument_says_what_it_is_for() -> None:
    silent = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        params = getattr(command, "params", [])
        silent.extend(f"{' '.join(path)} {p.name}" for p in params if not (p.help or "").strip())
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    assert not silent, silent
