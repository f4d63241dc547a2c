"""A throwaway PostgreSQL server started from the machine's binaries (initdb, pg_ctl) for the tests."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

from tests.airflow_cli import free_port


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    database: str

    def uri(self, database: str | None = None) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database or self.database}"

    def airflow_conn(self, database: str | None = None) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{database or self.database}"

    def create_database(self) -> str:
        """A fresh, empty database; its name. (psycopg 3: the postgres provider's driver.)"""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=self.database,
                             autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return name


def find_binaries() -> str | None:
    """The folder holding initdb and pg_ctl, or None."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return os.path.dirname(candidates[0]) if candidates else None


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason to skip."""
    if find_binaries() is None:
        return "PostgreSQL binaries (initdb, pg_ctl) are not installed on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class PostgresCluster:
    """initdb + pg_ctl start on a free port in a temporary folder; stop and delete on close."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        assert self.bin, "no PostgreSQL binaries"
        self.dir = tempfile.mkdtemp(prefix="greenapi-pg-")
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self._run(f"{self.bin}/initdb", "-D", self._data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.restart()
        return PostgresServer("127.0.0.1", self.port, "postgres", "postgres")

    @property
    def _data(self) -> str:
        return os.path.join(self.dir, "data")

    def stop(self) -> None:
        """Stop the server at once (as a crash would); restart() brings it back."""
        self._run(f"{self.bin}/pg_ctl", "-D", self._data, "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(f"{self.bin}/pg_ctl", "-D", self._data, "-o", options, "-l", os.path.join(self.dir, "log"),
                  "-w", "start")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
