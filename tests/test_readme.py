"""The README's shell blocks run as written, in order, on the shipped samples and the embedded
SQLite default, in a fresh HOME: the README cannot drift from what semret does.

``uv run X`` is run as X from this test's environment (a two-line ``uv`` on PATH stands in for
uv, which would otherwise resolve the project again for every command); everything else in a
block is bash as a user would type it. The one block skipped is the test command itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIPPED = {"uv run pytest"}


def shell_blocks() -> list[str]:
    return [block.strip() for block in BLOCK.findall(README.read_text(encoding="utf-8"))]


def test_the_readme_starts_with_the_main_job_and_the_tests() -> None:
    blocks = shell_blocks()
    assert blocks[:2] == ["uv run semret demo", "uv run pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().splitlines()[-1] == blocks[1]  # CI runs exactly the README's test command


@pytest.mark.long
def test_every_readme_block_runs_in_order(tmp_path: Path) -> None:
    home, work, bin_dir = tmp_path / "home", tmp_path / "work", tmp_path / "bin"
    for folder in (home, work, bin_dir):
        folder.mkdir()
    (work / "src").symlink_to(ROOT / "src")  # the blocks name the shipped samples by their paths
    uv = bin_dir / "uv"
    uv.write_text('#!/bin/sh\n[ "$1" = run ] || exit 64\nshift\nexec "$@"\n')
    uv.chmod(0o755)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SEMRET_", "XDG_")) and key not in ("VIRTUAL_ENV",)
    }
    environment |= {"HOME": str(home), "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{environment['PATH']}"}
    ran = 0
    for number, block in enumerate(shell_blocks(), start=1):
        if block in SKIPPED:
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=work,
            env=environment,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"README block {number} failed ({done.returncode}):\n{block}\n--- output ---\n"
                        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")  # fmt: skip
        ran += 1
    assert ran == len(shell_blocks()) - len(SKIPPED)
    assert (home / ".local" / "share" / "semret" / "semret.sqlite3").is_file()  # the embedded default
    assert (work / "semret-demo" / "results.json").is_file()
