"""The README's shell blocks run as written, in order, on the shipped samples and the embedded
SQLite default, in a fresh HOME: the README cannot drift from what semret does.

``uv run X`` is run as X from this test's environment (a two-line ``uv`` on PATH stands in for
uv, which would otherwise resolve the project again for every command); everything else in a
block is bash as a user would type it. The one block skipped is the test command itself. The
README's `semret serve` command, which runs until stopped, is started after the blocks (on the
demo's store and report, as the README says), its page read, and stopped with Ctrl+C (SIGINT);
only if port 8000 is taken on the test machine is a free one added (``--port``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
SKIPPED = {"uv run pytest"}
SERVE = re.compile(r"`(uv run semret serve[^`]*)`, then open (http://127\.0\.0\.1:8000/)")


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
    check_serve_command(work, environment)
    assert (home / ".local" / "share" / "semret" / "semret.sqlite3").is_file()  # the embedded default
    assert (work / "semret-demo" / "results.json").is_file()


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def check_serve_command(work: Path, environment: dict[str, str]) -> None:
    """Run the README's `semret serve` command as written, read the page it names, stop it."""
    (found,) = SERVE.findall(README.read_text(encoding="utf-8"))
    command, url = found
    argv = shlex.split(command)[2:]  # `uv run X` runs X, as the shim does
    if not port_is_free(8000):
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            port = spare.getsockname()[1]
        argv, url = [*argv, "--port", str(port)], f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        argv, cwd=work, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, page = time.monotonic() + 120, None
        while page is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert page is not None, f"`{command}` did not serve {url}: {server.poll()=}"
        assert "eval-fashion-mnist-test-" in page and "semret-demo" in page  # the demo's collection, report
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
            pytest.fail(f"`{command}` did not stop on Ctrl+C within 30 s:\n{output}")
    assert server.returncode == 0, output
    assert "semret serve: http://127.0.0.1:" in output and "Ctrl+C stops it" in output
