"""Helpers shared by the tests: running the CLI, and the Fashion-MNIST class names."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from semret.cli import app

FASHION_MNIST_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

_runner = CliRunner()


def semret(*args: str | Path) -> Result:
    """Run ``semret ARGS`` in-process (Typer's test runner)."""
    return _runner.invoke(app, [str(a) for a in args])


def ok(*args: str | Path) -> Result:
    """Run ``semret ARGS`` and assert it succeeded (showing its output if not)."""
    result = semret(*args)
    assert result.exit_code == 0, result.output
    return result
