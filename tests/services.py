"""A real, throw-away PostgreSQL server for the tests that need a database.

``PostgresServer`` runs ``initdb`` into a fresh temporary folder, starts the server there on a free
port of 127.0.0.1 (trust authentication, no password; its unix socket in the same folder, so it never
touches /var/run/postgresql), and on ``stop()`` kills it and removes the folder. Durability is off
(``fsync``, ``full_page_writes``, ``synchronous_commit``): nothing it holds outlives the test session.

    with PostgresServer() as pg:
        url = pg.create_database("grades")  # postgresql+psycopg://postgres@127.0.0.1:PORT/grades

``initdb`` refuses to run as root, so as root the server's programs run as the ``postgres`` user and
its folder is handed to that user; as anyone else they run as the current user. The programs are
looked for in ``$PG_BIN``, then /usr/lib/postgresql/15/bin, then next to ``pg_ctl`` on the ``PATH``.

``postgres_available()`` says, in one line, why no server can be started here (``None`` when one
can), for a fixture to ``pytest.skip`` with on a laptop; CI installs everything.

Run ``python -m tests.services`` to check by hand that a server starts, takes a row and stops.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

__all__ = ["PostgresServer", "postgres_available"]

SERVICE_USER = "postgres"  # the owner of the server's programs and files when we run as root
BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin",)
PORT_ATTEMPTS = 3  # a free port can be taken between finding it and the server binding it
LOG_LINES = 20  # of the server's log, in the message when it does not start


def _bin_dir() -> Path | None:
    candidates = [os.environ.get("PG_BIN", ""), *BIN_CANDIDATES]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in filter(None, candidates):
        if all(os.access(Path(folder, name), os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def postgres_available() -> str | None:
    """``None`` when a PostgresServer can start here, else the reason it cannot, in one line."""
    if _bin_dir() is None:
        return ("PostgreSQL not found: no initdb/pg_ctl/postgres in $PG_BIN, "
                f"{', '.join(BIN_CANDIDATES)} or on the PATH")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as"
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        return f"psycopg is not importable ({exc}); pip install 'psycopg[binary]'"
    return None


def _free_port() -> int:
    # Bind port 0 and let the kernel choose; released at once, so another process may take it
    # before the server binds it: start() retries on "Address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in its own temporary folder; a context manager (start, then stop).

    ``stop()`` is safe to call twice, and after a start that failed half-way; an ``atexit`` hook
    calls it too, so a test session that dies with an exception leaves no server running.
    """

    def __init__(self) -> None:
        self.root = os.geteuid() == 0
        # The OS user the programs run as, and the name of the server's superuser.
        self.user = SERVICE_USER if self.root else pwd.getpwuid(os.geteuid()).pw_name
        self.port: int | None = None
        self.tmpdir: Path | None = None
        self._bin: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self.tmpdir is not None:
            raise RuntimeError("PostgresServer already started")
        reason = postgres_available()
        if reason:
            raise RuntimeError(f"cannot start PostgreSQL: {reason}")
        self._bin = _bin_dir()
        atexit.register(self.stop)
        try:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="pgtest-"))
            if self.root:
                account = pwd.getpwnam(self.user)
                os.chown(self.tmpdir, account.pw_uid, account.pw_gid)
            self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", self.user,
                      "-E", "UTF8", "--locale=C", "--no-sync")
            for attempt in range(1, PORT_ATTEMPTS + 1):
                self.port = _free_port()
                if self._pg_ctl_start():
                    return self
                log = self._log_tail()
                if "already in use" not in log or attempt == PORT_ATTEMPTS:
                    raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1:{self.port}; "
                                       f"the last lines of its log:\n{log}")
                self._stop_server()  # in case it half-started; then a fresh log, a fresh port
                self.logfile.unlink(missing_ok=True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if self.tmpdir is None:
            return
        self._stop_server()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = self.port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- what the tests use ------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of database ``dbname`` on this server (no password: trust auth)."""
        if self.port is None:
            raise RuntimeError("PostgresServer is not running")
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its URL."""
        import psycopg
        from psycopg import sql

        if self.port is None:
            raise RuntimeError("PostgresServer is not running")
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    # -- internals ---------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def logfile(self) -> Path:
        return self.tmpdir / "server.log"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run one of the server's programs as the service user, in the temporary folder."""
        as_user = {}
        if self.root:
            account = pwd.getpwnam(self.user)
            as_user = {"user": account.pw_uid, "group": account.pw_gid,
                       "extra_groups": os.getgrouplist(self.user, account.pw_gid)}
        # Locale and PG* settings of the caller must not reach initdb or pg_ctl.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_", "LANG"))}
        env["LC_ALL"] = "C"
        result = subprocess.run([str(self._bin / program), *args], check=False, cwd=self.tmpdir,
                                env=env, capture_output=True, text=True, **as_user)
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed (exit {result.returncode}):\n"
                               f"{result.stdout}{result.stderr}".rstrip())
        return result

    def _pg_ctl_start(self) -> bool:
        options = " ".join([
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={shlex.quote(str(self.tmpdir))}",
            "-c max_connections=50",
            # Speed over durability: the data is thrown away with the folder.
            "-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off",
        ])
        result = self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                           "-w", "-t", "60", "-o", options, "start", check=False)
        return result.returncode == 0

    def _stop_server(self) -> None:
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "-t", "30", "stop",
                  check=False)
        # Should pg_ctl fail (a half-started server), SIGQUIT is what its immediate mode sends.
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log written)"
        return "\n".join(lines[-LOG_LINES:]) or "(the log is empty)"


if __name__ == "__main__":
    reason = postgres_available()
    if reason:
        raise SystemExit(f"skipped: {reason}")
    began = time.perf_counter()
    with PostgresServer() as pg:
        started = time.perf_counter()
        import psycopg

        url = pg.create_database("selfcheck")
        with psycopg.connect(url.replace("+psycopg", "")) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (42)")
            assert conn.execute("SELECT x FROM t").fetchone() == (42,)
        folder = pg.tmpdir
    assert not folder.exists(), f"{folder} was not removed"
    print(f"ok: {url}; start {started - began:.2f} s, start+stop {time.perf_counter() - began:.2f} s")
