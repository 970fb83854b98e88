"""Schema, migrations and connection errors; the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from agent.db import (
    DB_URL_ENV,
    DatabaseUnreachable,
    SchemaMissing,
    SchemaOutdated,
    check_schema,
    connect,
    current_revision,
    head_revision,
    make_engine,
    resolve_url,
    session_scope,
    upgrade,
)
from agent.models import Base
from agent.observe import observe
from agent.seed import SeedResult
from agent.settings import get_settings
from cli.main import main
from environment.kpis import N_OBS
from tests.agent.conftest import SEED_END


@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning")
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_the_migrations_create_exactly_the_models(any_engine: Engine) -> None:
    assert current_revision(any_engine) == head_revision()
    check_schema(any_engine)
    with any_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_twice_is_harmless(sqlite_engine: Engine) -> None:
    assert upgrade(sqlite_engine) == head_revision()


def test_a_missing_sqlite_file_says_what_to_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nope.db'}"
    with pytest.raises(
        SchemaMissing, match=rf"does not exist; run `autopilot db upgrade --db {url}`"
    ):
        connect(url)
    assert not (tmp_path / "nope.db").exists()


def test_a_database_without_the_schema_says_what_to_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with make_engine(url).begin() as c:
        c.execute(text("CREATE TABLE unrelated (id INTEGER)"))
    with pytest.raises(
        SchemaMissing, match=r"has no autopilot schema \(it has only \['unrelated'\]\); run"
    ):
        connect(url)


def test_a_schema_at_an_unknown_migration_is_refused(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(SchemaOutdated, match="at migration ffff, unknown to this code"):
        check_schema(sqlite_engine)


def test_a_schema_at_an_older_migration_says_upgrade(sqlite_engine: Engine) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from agent.db import alembic_config

    revisions = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    with sqlite_engine.begin() as connection:
        command.downgrade(
            alembic_config(connection), revisions[-1] if len(revisions) > 1 else "base"
        )
    older = current_revision(sqlite_engine)
    error = SchemaOutdated if older else SchemaMissing
    with pytest.raises(error, match=r"run `autopilot db upgrade --db sqlite:///"):
        check_schema(sqlite_engine)
    if older:
        with pytest.raises(
            SchemaOutdated, match=f"is at migration {older}, this code needs {head_revision()}"
        ):
            connect(sqlite_engine.url)
    assert upgrade(sqlite_engine) == head_revision()


def test_an_unreachable_server_is_named() -> None:
    with pytest.raises(
        DatabaseUnreachable,
        match=r"cannot reach database postgresql\+psycopg://nobody@127.0.0.1:9/x",
    ):
        connect("postgresql+psycopg://nobody@127.0.0.1:9/x", connect_args={"connect_timeout": 2})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "invalid database URL 'not a url'; expected e.g. sqlite:///autopilot.db"),
        ("nosuchdb://x/y", "unsupported database URL 'nosuchdb://x/y'"),
    ],
)
def test_bad_urls_are_rejected(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_engine(url)


def test_the_url_comes_from_the_argument_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DB_URL_ENV, raising=False)
    assert resolve_url() == "sqlite:///autopilot.db"
    monkeypatch.setenv(DB_URL_ENV, "sqlite:///other.db")
    get_settings.cache_clear()
    assert resolve_url() == "sqlite:///other.db"
    assert resolve_url("sqlite:///given.db") == "sqlite:///given.db"


# --- the command line ---------------------------------------------------------------------


def test_cli_upgrade_seed_and_observe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    assert f"at migration {head_revision()}" in capsys.readouterr().out
    args = [
        "seed-db",
        "--users",
        "200",
        "--days",
        "3",
        "--scenario",
        "viral_surge",
        "--seed",
        "2",
        "--end",
        "2025-03-01T00:00",
        "--quiet",
        "--db",
        url,
    ]
    assert main(args) == 0
    assert "seeded 3 days of scenario 'viral_surge'" in capsys.readouterr().out
    assert main([*args[:-2], "--db", url]) == 2
    assert "already has" in capsys.readouterr().err
    assert main(["observe", "--db", url, "--as-of", "2025-03-01"]) == 0
    out = capsys.readouterr().out
    assert "activation_rate" in out and "Issues" in out
    assert main(["observe", "--db", url, "--as-of", "2025-03-01", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["observation"]) == N_OBS and payload["kpis"]["mrr"] > 0


def test_cli_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    assert main(["observe", "--db", url]) == 1
    assert "run `autopilot db upgrade" in capsys.readouterr().err
    assert main(["seed-db", "--users", "5", "--days", "3", "--db", url]) == 2
    assert "users=5 is outside [100, 5000000]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["observe", "--as-of", "yesterday"])
    assert "expected an ISO-8601 date or time" in capsys.readouterr().err


# --- PostgreSQL: the same business gives the same KPIs -------------------------------------


@pytest.mark.postgres
def test_postgres_and_sqlite_observe_the_same_business(
    postgres_engine: Engine, tmp_path: Path
) -> None:
    from agent.seed import SeedConfig, seed

    config = SeedConfig(users=400, days=10, scenario="mixed", seed=5, end=SEED_END)
    sqlite = make_engine(f"sqlite:///{tmp_path / 'twin.db'}")
    upgrade(sqlite)
    results: list[SeedResult] = [seed(engine, config) for engine in (sqlite, postgres_engine)]
    assert results[0].rows == results[1].rows
    snapshots = []
    for engine in (sqlite, postgres_engine):
        with session_scope(engine) as session:
            snapshots.append(observe(session, results[0].as_of))
    for name, value in snapshots[0].kpis.items():
        assert snapshots[1].kpis[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert snapshots[0].defects == snapshots[1].defects
