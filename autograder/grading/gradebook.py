"""nbgrader's gradebook, in whatever database a course keeps it: written by the class grader only.

The default is a SQLite file beside the grades (``OUT/gradebook.db``); ``grade --db-url URL``
puts it in any database SQLAlchemy and nbgrader support — PostgreSQL
(``postgresql+psycopg://user@host/db``) for a course several instructors share.

Several ``grade`` runs may write one database at once (different assignments, or the same one
from two terminals). Each student's grades are one short transaction, retried when another writer
got there first (a student row both runs create, SQLite's lock, a PostgreSQL deadlock), so
nothing one run writes is lost to the other. Making the tables and recording an assignment's
cells happen under a lock the database itself holds (PostgreSQL's advisory lock; SQLite's own
write lock), so two runs on an empty database do not both create it.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..course import UsageError

try:
    import fcntl
except ImportError:  # Windows: SQLite's own lock, and retry(), have to do
    fcntl = None

LOCK_KEY = 0x436F6E764E657473  # "ConvNets": the advisory lock every grade run takes to prepare
RETRIES = 8


def default_url(out: Path) -> str:
    return f"sqlite:///{out / 'gradebook.db'}"


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return "<unparseable URL>"


def check(url: str) -> str:
    """``url`` if a gradebook can live there, else a UsageError saying what is wrong and how to fix it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"--db-url {url!r} is not a database URL; e.g. sqlite:////path/gradebook.db or "
                         "postgresql+psycopg://user@host:5432/gradebook") from None
    try:
        engine = create_engine(url)
    except NoSuchModuleError:
        raise UsageError(f"--db-url: no database driver for {parsed.drivername!r}; use sqlite:/// or "
                         "postgresql+psycopg://") from None
    except ImportError as exc:
        raise UsageError(f"--db-url: the driver for {parsed.drivername!r} is not installed ({exc.name}); "
                         "pip install '.[scale]' installs psycopg for PostgreSQL") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().parent
        if not folder.is_dir():
            raise UsageError(f"--db-url: folder {folder} does not exist; create it or give another path")
    elif parsed.get_backend_name() == "sqlite":
        raise UsageError("--db-url: an in-memory SQLite database would vanish with the run; give a file path")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise UsageError(f"--db-url: cannot connect to {shown(url)}: {reason[0] if reason else type(exc).__name__}"
                         ) from None
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def locked(url: str) -> Iterator[None]:
    """Held while the tables are made and an assignment's cells recorded: one run at a time."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("select pg_advisory_lock(:k)"), {"k": LOCK_KEY - 2**63})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("select pg_advisory_unlock(:k)"), {"k": LOCK_KEY - 2**63})
                    conn.commit()
        elif engine.dialect.name == "sqlite" and engine.url.database and fcntl is not None:
            with open(f"{engine.url.database}.lock", "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        else:
            yield
    finally:
        engine.dispose()


def stamp(url: str) -> None:
    """Make nbgrader's tables if the database has none, and give it nbgrader's alembic stamp (the
    head of its migrations), computed in this process: nbgrader itself would run the ``alembic``
    command, which is only on PATH inside an activated environment, and a gradebook without its
    stamp is one nbgrader's later versions cannot migrate."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect, text
    import nbgrader
    from nbgrader.api import Base

    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        if "alembic_version" in tables:
            return
        config = Config()
        config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        head = ScriptDirectory.from_config(config).get_current_head()
        with engine.begin() as conn:
            Base.metadata.create_all(bind=conn)
            conn.execute(text("create table alembic_version (version_num varchar(32) not null)"))
            conn.execute(text("insert into alembic_version (version_num) values (:v)"), {"v": head})
    finally:
        engine.dispose()


def retry(what, action, *, attempts: int = RETRIES):
    """``action()``, again after a rollback when another writer conflicted with it."""
    from nbgrader.api import InvalidEntry
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            return action()
        except (InvalidEntry, IntegrityError, OperationalError, DBAPIError) as exc:
            what.db.rollback()
            if attempt == attempts - 1:
                raise RuntimeError(f"the gradebook refused the write {attempts} times: "
                                   f"{str(exc).splitlines()[0]}") from exc
            time.sleep(min(2.0, 0.05 * 2 ** attempt))


@dataclass
class Late:
    """How late a submission was and what nbgrader's late-submission rule takes off for it."""
    timestamp: str | None = None  # when it was handed in (UTC, as nbgrader writes it)
    seconds_late: float = 0.0
    penalty: float = 0.0


@contextlib.contextmanager
def opened(url: str):
    """nbgrader's Gradebook on ``url`` (stamped and made first), without its SQLAlchemy noise."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush noise
        with Gradebook(url) as gb:
            yield gb
