"""The command line starts without torch: importing it takes seconds, and only the commands that
train, encode or evaluate (and the neural-LSH index) need it, so those import it when they run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The evaluation pipeline trains networks: `semret eval` and `semret demo` import it when they run.
RUNS_TORCH = (
    "semret.app.eval_pipeline",
    "semret.app.eval_methods",
    "semret.app.eval_sweep",
    "semret.app.iwan_published",
)
# Run in a fresh interpreter: this test process may have imported torch already.
PROBE = textwrap.dedent(
    f"""
    import importlib, pkgutil, sys
    for name in sys.argv[1:]:
        module = importlib.import_module(name)
        for sub in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
            if ".alembic" not in sub.name and sub.name not in {RUNS_TORCH!r}:
                importlib.import_module(sub.name)
    {{extra}}
    print(sorted(name for name in ("torch", "torchvision") if name in sys.modules))
    """
)


def _torch_modules_after(*modules: str, extra: str = "") -> str:
    code = PROBE.format(extra=extra)
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_cli_and_its_help_do_not_import_torch() -> None:
    help_run = (
        "from typer.testing import CliRunner\n"
        "from semret.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'semret' in result.output, result.output"
    )
    assert _torch_modules_after("semret.cli", extra=help_run) == "[]"


@pytest.mark.parametrize("package", ["semret.iwan", "semret.sql", "semret.app"])
def test_the_iwan_sql_and_app_modules_do_not_import_torch(package: str) -> None:
    assert _torch_modules_after(package) == "[]"


def test_the_indexes_import_torch_only_to_use_neural_lsh() -> None:
    kinds = (
        "from semret.indexes import index_kinds, make_index\n"
        "assert 'neural-lsh' in index_kinds(), index_kinds()\n"
        "make_index('neural-lsh', 8)"
    )
    assert _torch_modules_after("semret.indexes", extra=kinds) == "[]"
