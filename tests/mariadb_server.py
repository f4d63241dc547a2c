"""A throwaway MariaDB server started from Debian's mariadb-server binaries (mariadb-install-db, mariadbd)
on a free loopback port, for the tests. The machine's own MariaDB service (if any) is left alone.

    reason = why_unavailable()            # None, or why the tests must skip
    cluster = MariaDBCluster()
    server = cluster.start()              # MariaDBServer: host, port, user, password, database
    name = server.create_database()       # a fresh, empty database (binary; collation=None: the server's default)
    server.airflow_conn(name)             # AIRFLOW_CONN_* value (JSON, conn_type mysql)
    server.connect(name)                  # a MySQLdb (mysqlclient) connection
    cluster.close()                       # stop the server, delete its files
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.airflow_cli import free_port

USER = "greenapi"
PASSWORD = "greenapi-test-pw"  # a password on purpose: the tests then cover the connection's password field
DATABASE = "greenapi"


@dataclass(frozen=True)
class MariaDBServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def airflow_conn(self, database: str | None = None) -> str:
        """An ``AIRFLOW_CONN_*`` value for the MySQL provider (its ``schema`` is the database)."""
        return json.dumps({"conn_type": "mysql", "host": self.host, "port": self.port, "login": self.user,
                           "password": self.password, "schema": database or self.database})

    def connect(self, database: str | None = None, **options: Any) -> Any:
        """A mysqlclient connection (the MySQL provider's driver), autocommit off as the driver's default."""
        import MySQLdb

        return MySQLdb.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               database=database or self.database, **options)

    def create_database(self, name: str | None = None, collation: str | None = "utf8mb4_bin") -> str:
        """A fresh, empty database (utf8mb4, ``collation``; None: the server's default character set and
        collation, as a plain ``CREATE DATABASE`` gets); its name."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        options = f" CHARACTER SET utf8mb4 COLLATE {collation}" if collation else ""
        admin = self.connect()
        try:
            admin.cursor().execute(f"CREATE DATABASE `{name}`{options}")
        finally:
            admin.close()
        return name


def find_binaries() -> tuple[str, str] | None:
    """(mariadb-install-db, mariadbd), or None."""
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or next(
        (p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.access(p, os.X_OK)), None)
    return (install_db, server) if install_db and server else None


def why_unavailable() -> str | None:
    """None when a server can be started here and reached with the MySQL provider's driver, else why not."""
    if find_binaries() is None:
        return ("MariaDB binaries (mariadb-install-db, mariadbd) are not installed: "
                "run scripts/install-engine-test-deps.sh (Debian's mariadb-server)")
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return ("mysqlclient (the MySQL provider's driver) is not installed: run "
                "scripts/install-engine-test-deps.sh (it builds against Debian's libmariadb-dev)")
    return None


class MariaDBCluster:
    """mariadb-install-db + mariadbd on a free port in a temporary folder; stop and delete on close."""

    def __init__(self) -> None:
        binaries = find_binaries()
        assert binaries, "no MariaDB binaries"
        self.install_db, self.mariadbd = binaries
        self.dir = Path(tempfile.mkdtemp(prefix="greenapi-mariadb-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def log(self) -> Path:
        return self.dir / "error.log"

    def start(self, timeout: float = 60) -> MariaDBServer:
        subprocess.run([self.install_db, "--no-defaults", f"--datadir={self._data}", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *self._as_root()],
                       check=True, capture_output=True, timeout=120)
        init = self.dir / "init.sql"
        init.write_text(
            f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n"
            f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n"
        )
        self.server = MariaDBServer("127.0.0.1", self.port, USER, PASSWORD, DATABASE)
        self.restart(timeout)
        return self.server

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def restart(self, timeout: float = 60) -> None:
        """Start mariadbd (again, after stop()) and wait until a real login succeeds."""
        # innodb-flush-log-at-trx-commit=2: each commit reaches the OS, so a killed server (stop()) keeps every
        # committed row, without an fsync per commit (as the PostgreSQL test server runs with fsync=off).
        self.process = subprocess.Popen(
            [self.mariadbd, "--no-defaults", f"--datadir={self._data}", f"--socket={self.dir / 'socket'}",
             f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
             f"--pid-file={self.dir / 'mariadbd.pid'}", f"--log-error={self.log}",
             f"--init-file={self.dir / 'init.sql'}", "--skip-log-bin", "--innodb-flush-log-at-trx-commit=2",
             "--innodb-buffer-pool-size=64M", "--max-connections=500", *self._as_root()],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_for_login(timeout)

    def _wait_for_login(self, timeout: float) -> None:
        # `mariadb-admin ping` answers 0 even on "Access denied": only a login with the test user proves the
        # init file ran and the server takes connections.
        import MySQLdb

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"mariadbd exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                self.server.connect(connect_timeout=2).close()
                return
            except MySQLdb.OperationalError as error:
                last = error
                time.sleep(0.1)
        raise AssertionError(f"MariaDB did not accept a login within {timeout:.0f} s ({last}):\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no error log)"

    def stop(self, crash: bool = True) -> None:
        """Stop the server: at once as a crash would (SIGKILL) by default; restart() brings it back."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stop(crash=False)
        shutil.rmtree(self.dir, ignore_errors=True)
