"""Every command that takes ``--db`` answers a database it cannot use with one line naming
the path and a fix that works, never a traceback (:func:`agent.db.sqlite_file_problem`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.db import SQLITE_HEADER, connect, make_engine, sqlite_file_problem, upgrade
from cli.main import build_parser, main

MINIMAL_ARGS: dict[tuple[str, ...], list[str]] = {
    ("db", "upgrade"): [],
    ("seed-db",): ["--users", "100", "--days", "7", "--quiet"],
    ("observe",): [],
    ("cycle",): ["--policy", "rules"],
    ("monitor",): [],
    ("approvals", "list"): [],
    ("approvals", "approve"): ["1", "--by", "ann"],
    ("approvals", "reject"): ["1", "--by", "ann"],
    ("undo",): ["1", "--by", "ops"],
    ("audit", "verify"): [],
    ("audit", "sign"): ["--by", "ops"],
    ("kill-switch",): ["on", "--by", "ops"],
    ("lock", "status"): [],
    ("lock", "release"): ["--force", "--by", "ops"],
    ("agent", "run"): [],
    ("agent", "status"): [],
    ("alerts", "list"): [],
    ("alerts", "deliver"): [],
    ("learn",): [],
    ("serve",): [],
    ("api-key", "create"): ["--role", "admin", "--name", "ci"],
    ("api-key", "list"): [],
    ("api-key", "revoke"): ["ci"],
    ("decisions", "export"): ["--out", "decisions.jsonl"],
}
"""Each command taking ``--db``, with the least it needs besides ``--db``."""


def _commands_with_db(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set:
    found: set[tuple[str, ...]] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= _commands_with_db(sub, (*prefix, name))
        elif "--db" in action.option_strings:
            found.add(prefix)
    return found


def test_the_table_covers_every_command_that_takes_db() -> None:
    assert _commands_with_db(build_parser()) == set(MINIMAL_ARGS)


def _bad_targets(tmp_path: Path) -> dict[str, tuple[str, list[str]]]:
    """Bad ``--db`` values -> (the URL, what the error must say)."""
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n")
    missing = tmp_path / "no" / "such" / "folder" / "a.db"
    return {
        "text-file": (
            f"sqlite:///{text_file}",
            [str(text_file), "is not a SQLite database", "autopilot db upgrade"],
        ),
        "missing-folder": (
            f"sqlite:///{missing}",
            [str(missing.parent), "does not exist", f"mkdir -p {missing.parent}"],
        ),
        "a-folder": (f"sqlite:///{tmp_path}", [str(tmp_path), "is a folder, not a file"]),
        "a-bare-path": (str(text_file), [f"sqlite:///{text_file}"]),
    }


@pytest.mark.parametrize("target", ["text-file", "missing-folder", "a-folder", "a-bare-path"])
@pytest.mark.parametrize("command", sorted(MINIMAL_ARGS), ids="-".join)
def test_a_database_that_cannot_be_used_is_one_clear_line(
    command: tuple[str, ...],
    target: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    url, expected = _bad_targets(tmp_path)[target]
    status = main([*command, *MINIMAL_ARGS[command], "--db", url])
    err = capsys.readouterr().err
    assert status in (1, 2), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for words in expected:
        assert words in err, err
    assert not (tmp_path / "no").exists()  # nothing created on the way


def test_the_advice_for_a_missing_folder_works(tmp_path: Path) -> None:
    """After `mkdir -p` as told, `db upgrade` creates the database."""
    missing = tmp_path / "new" / "place" / "a.db"
    assert "mkdir -p" in sqlite_file_problem(make_engine(f"sqlite:///{missing}").url)
    missing.parent.mkdir(parents=True)
    assert main(["db", "upgrade", "--db", f"sqlite:///{missing}"]) == 0
    connect(f"sqlite:///{missing}").dispose()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", False),  # an empty file is a SQLite database not yet written
        (SQLITE_HEADER, False),
        (SQLITE_HEADER[:-1] + b"!", True),  # one byte off
        (b"SQLite format 2\x00", True),
    ],
    ids=["empty", "sqlite-header", "header-one-byte-off", "other-header"],
)
def test_the_file_check_reads_the_sqlite_header(
    tmp_path: Path, content: bytes, problem: bool
) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    assert bool(sqlite_file_problem(make_engine(f"sqlite:///{path}").url)) is problem


def test_a_real_database_and_a_server_url_pass_the_check(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'real.db'}")
    upgrade(engine)
    engine.dispose()
    assert sqlite_file_problem(engine.url) == ""
    assert sqlite_file_problem(make_engine("postgresql+psycopg://u@h/db").url) == ""
