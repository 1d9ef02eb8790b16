"""The ``semret`` command line, through Typer's test runner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from semret.iwan.norms_download import USF_FILES
from semret.sql import migrations

from helpers import semret

FIXTURES = Path(__file__).parent / "fixtures" / "norms"


def test_a_full_session(database_url: str) -> None:
    before = semret("--db", database_url, "norms", "stats")
    assert before.exit_code == 1
    assert "no semret schema yet: run `semret db upgrade`" in before.stderr
    assert "Traceback" not in before.output

    assert "revision none (no semret schema)" in semret("db", "current", "--db", database_url).stdout
    upgraded = semret("db", "upgrade", "--db", database_url)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {migrations.head_revision()} (up to date)" in upgraded.stdout

    loaded = semret("--db", database_url, "norms", "load", FIXTURES)
    assert loaded.exit_code == 0, loaded.output
    assert "pairs inserted 15, updated 0, deleted 0" in loaded.stdout
    assert "loading rows" in loaded.stderr  # the progress bar

    files = (FIXTURES / "Cue_Target_Pairs.C", FIXTURES / "Cue_Target_Pairs.A-B")
    again = semret("norms", "load", *files, "--db", database_url)
    assert again.exit_code == 0 and "(nothing changed)" in again.stdout

    stats = semret("norms", "stats", "--json", "--db", database_url)
    assert json.loads(stats.stdout) == {
        "words": 23,
        "cues": 11,
        "targets": 14,
        "pairs": 15,
        "normed_pairs": 8,
        "sources": 2,
    }

    shown = semret("norms", "show", "apple", "-n", "2", "--json", "--db", database_url)
    assert shown.exit_code == 0, shown.output
    apple = json.loads(shown.stdout)
    assert [a["word"] for a in apple["forward"]] == ["RED", "ORANGE"]
    assert [a["word"] for a in apple["backward"]] == ["PEAR"]
    table = semret("norms", "show", "APPLE", "--db", database_url).stdout
    assert "APPLE: forward associates" in table and "0.208" in table

    unknown = semret("norms", "show", "appel", "--db", database_url)
    assert unknown.exit_code == 1
    assert "unknown word 'appel'" in unknown.stderr and "did you mean APPLE" in unknown.stderr

    down = semret("db", "downgrade", "base", "--db", database_url)
    assert down.exit_code == 0 and "revision none" in down.stdout


def upgraded(url: str) -> str:
    assert semret("db", "upgrade", "--db", url).exit_code == 0
    return url


def test_a_bad_line_loads_nothing_and_names_the_line(sqlite_url: str, tmp_path: Path) -> None:
    upgraded(sqlite_url)
    shutil.copy(FIXTURES / "Cue_Target_Pairs.A-B", tmp_path)
    broken = tmp_path / "Cue_Target_Pairs.C"
    original = (FIXTURES / "Cue_Target_Pairs.C").read_text()
    broken.write_text(original.replace("GULP, 7-ELEVEN, NO, 152", "GULP, 7-ELEVEN, NO, many"))
    failed = semret("norms", "load", tmp_path, "--db", sqlite_url)
    assert failed.exit_code == 1
    assert f"{broken}:9: field #G: not a non-negative integer (value 'many')" in failed.stderr
    assert json.loads(semret("norms", "stats", "--json", "--db", sqlite_url).stdout)["pairs"] == 0

    skipped = semret("norms", "load", tmp_path, "--skip-invalid", "--db", sqlite_url)
    assert skipped.exit_code == 0, skipped.output
    assert "skipped 1 invalid lines" in skipped.stderr
    assert "1 x not a non-negative integer" in skipped.stderr
    assert json.loads(semret("norms", "stats", "--json", "--db", sqlite_url).stdout)["pairs"] == 14


def test_the_shipped_sample_loads(sqlite_url: str) -> None:
    upgraded(sqlite_url)
    result = semret("norms", "load", "--sample", "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "Cue_Target_Pairs.sample" in result.stdout
    stats = json.loads(semret("norms", "stats", "--json", "--db", sqlite_url).stdout)
    assert stats["pairs"] == 2353 and stats["cues"] == 376
    shirt = json.loads(semret("norms", "show", "SHIRT", "-n", "1", "--json", "--db", sqlite_url).stdout)
    assert shirt["forward"][0]["word"] == "PANTS"


def test_the_environment_and_the_default_database_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert semret("db", "upgrade").exit_code == 0  # embedded default, inside tmp (see conftest)
    assert (tmp_path / "xdg" / "data" / "semret" / "semret.sqlite3").exists()
    env_db = tmp_path / "env.sqlite3"
    monkeypatch.setenv("SEMRET_DATABASE_URL", f"sqlite:///{env_db}")
    assert "env.sqlite3: revision none" in semret("db", "current").stdout


def test_load_without_paths_is_a_usage_error(sqlite_url: str) -> None:
    result = semret("norms", "load", "--db", upgraded(sqlite_url))
    assert result.exit_code == 1 and "give the norms files or directories to load, or --sample" in result.stderr


def test_a_database_that_is_down_gives_a_message_not_a_traceback() -> None:
    result = semret("--db", "postgresql://semret:s3cret@127.0.0.1:9/semret", "norms", "stats")
    assert result.exit_code == 1
    assert "cannot connect to the database postgresql+psycopg://semret:***@127.0.0.1:9/semret" in result.stderr
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_download_fetches_checks_and_keeps_the_files(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in USF_FILES:
        shutil.copy(FIXTURES / "Cue_Target_Pairs.C", mirror / name)
    destination = tmp_path / "norms"
    result = semret("norms", "download", destination, "--base-url", mirror.as_uri())
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in destination.iterdir()) == sorted(USF_FILES)

    (mirror / "Cue_Target_Pairs.S").write_text("<html>Not Found</html>")
    bad = semret("norms", "download", tmp_path / "other", "--base-url", mirror.as_uri())
    assert bad.exit_code == 1
    assert "Cue_Target_Pairs.S is not a USF Appendix A file" in bad.stderr
    assert not (tmp_path / "other" / "Cue_Target_Pairs.S").exists()
    missing = semret("norms", "download", tmp_path / "third", "--base-url", (tmp_path / "nowhere").as_uri())
    assert missing.exit_code == 1 and "cannot download" in missing.stderr
