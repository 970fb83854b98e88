"""Engines, sessions and migrations, with errors that say what to run.

The embedded default is the SQLite file ``autopilot.db``; any SQLAlchemy URL works (PostgreSQL
is tested); the URL is the settings' ``db_url`` (``AUTOPILOT_DB_URL``) unless a caller passes
one. :func:`connect` refuses a database
it cannot use and names the fix:

- unreachable server or unopenable file: :class:`DatabaseUnreachable`;
- no autopilot schema: :class:`SchemaMissing` ("run `autopilot db upgrade`");
- schema at an older (or unknown) migration: :class:`SchemaOutdated`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agent.settings import Settings, env_name, get_settings

if TYPE_CHECKING:  # Alembic loads only when a migration is looked at (not for `--help`)
    from alembic.config import Config

DB_URL_ENV = env_name("db_url")
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseError(RuntimeError):
    """A database the agent cannot use; the message says why and what to run."""


class DatabaseUnreachable(DatabaseError):
    """The server cannot be reached or the file cannot be opened."""


class SchemaMissing(DatabaseError):
    """The database has no autopilot schema."""


class SchemaOutdated(DatabaseError):
    """The schema is at another migration than this code expects."""


def resolve_url(url: str | None = None, settings: Settings | None = None) -> str:
    """``url`` if given, else the settings' ``db_url`` (default :func:`get_settings`:
    ``AUTOPILOT_DB_URL``, else ``sqlite:///autopilot.db``). An empty ``url`` is an error."""
    if url is not None and not url.strip():
        raise ValueError(f"database URL {url!r} is empty; give a SQLAlchemy URL or unset --db")
    return url or (settings or get_settings()).db_url


def _parse(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        hint = f"; for the SQLite file {url} write sqlite:///{url}" if "://" not in str(url) else ""
        raise ValueError(
            f"invalid database URL {str(url)!r}; expected e.g. sqlite:///autopilot.db or "
            f"postgresql+psycopg://user@host:5432/dbname{hint}"
        ) from None


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def engine_url(engine: Engine) -> str:
    """The engine's URL as a command may print it (password hidden)."""
    return _shown(engine.url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the seeding writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB
    cursor.close()


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see :func:`resolve_url`), without touching the database.

    SQLite connections enforce foreign keys and use WAL journaling, like a server would.
    Raises ``ValueError`` for a malformed URL or an unknown driver.
    """
    parsed = _parse(resolve_url(url) if url is None or isinstance(url, str) else url)
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as error:
        raise ValueError(f"unsupported database URL {_shown(parsed)!r}: {error}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "")


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def sqlite_file_problem(url: URL) -> str:
    """Why the SQLite file ``url`` names cannot hold a database, as one line naming the path
    and the fix; ``""`` when it can (an existing SQLite file, an empty file, or a new file in
    an existing folder) or when ``url`` is not a SQLite file. The one check behind every
    command's ``--db`` (and the API's database)."""
    path = _sqlite_file(url)
    if path is None:
        return ""
    if path.is_dir():
        return (
            f"database path {path} is a folder, not a file; give --db a file such as "
            f"sqlite:///{path / 'autopilot.db'}"
        )
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            return (
                f"database file {path}: its folder {folder} does not exist; create it first "
                f"(mkdir -p {folder}) or give --db a file in an existing folder"
            )
        return ""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        return f"database file {path} cannot be read: {error.strerror}; check its permissions"
    if header and header != SQLITE_HEADER:  # an empty file is a SQLite database not yet written
        return (
            f"{path} is not a SQLite database (it is some other kind of file); give --db an "
            f"autopilot database, or a new file name and run `autopilot db upgrade --db "
            f"sqlite:///NEW.db` to create one"
        )
    return ""


def ping(engine: Engine) -> None:
    """Open and close one connection; :class:`DatabaseUnreachable` if that fails (a SQLite
    file that cannot be a database fails first, see :func:`sqlite_file_problem`)."""
    problem = sqlite_file_problem(engine.url)
    if problem:
        raise DatabaseUnreachable(problem)
    try:
        with engine.connect():
            pass
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnreachable(f"cannot reach database {_shown(engine.url)}: {reason}") from None


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """The Alembic configuration, built in code (no ``alembic.ini``): the packaged migrations
    and either a live ``connection`` or a ``url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The migration this code expects."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise DatabaseError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or ``None`` if it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Create or upgrade the schema to ``revision``; returns the revision reached."""
    from alembic import command

    ping(engine)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)
    reached = current_revision(engine)
    return reached or ""


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaMissing` or :class:`SchemaOutdated` unless the database is at the
    head migration."""
    url = _shown(engine.url)
    fix = f"run `autopilot db upgrade --db {url}`"
    current = current_revision(engine)
    if current is None:
        tables = set(inspect(engine).get_table_names())
        detail = "it is empty" if not tables else f"it has only {sorted(tables)[:5]}"
        raise SchemaMissing(f"database {url} has no autopilot schema ({detail}); {fix}")
    head = head_revision()
    if current != head:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(alembic_config())
        known = {rev.revision for rev in script.walk_revisions()}
        if current in known:
            raise SchemaOutdated(
                f"database {url} is at migration {current}, this code needs {head}; {fix}"
            )
        raise SchemaOutdated(
            f"database {url} is at migration {current}, unknown to this code (head {head}): "
            "it was migrated by a newer autopilot; upgrade the package"
        )


def connect(url: str | URL | None = None, *, check: bool = True, **kwargs: Any) -> Engine:
    """An engine for a reachable database, checked to be at the head migration.

    A SQLite file that does not exist is reported (rather than silently created empty).
    """
    parsed = _parse(resolve_url(url) if url is None or isinstance(url, str) else url)
    path = _sqlite_file(parsed)
    problem = sqlite_file_problem(parsed)
    if problem:
        raise DatabaseUnreachable(problem)
    if check and path is not None and not path.exists():
        raise SchemaMissing(
            f"database file {path} does not exist; "
            f"run `autopilot db upgrade --db {_shown(parsed)}` to create it"
        )
    engine = make_engine(parsed, **kwargs)
    ping(engine)
    if check:
        check_schema(engine)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep loaded attributes after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error.

    The one owner of a transaction: every CLI command (and, as a dependency, every API route)
    opens one of these and hands the session to agent functions, which flush and never
    commit (see the docstrings of :mod:`agent.orchestrator` and :mod:`agent.lock` for the
    two documented exceptions).
    """
    with session_factory(engine)() as session, session.begin():
        yield session
