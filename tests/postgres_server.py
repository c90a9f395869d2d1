"""A real PostgreSQL server for the tests: Debian's binaries, a fresh cluster in a temporary
folder, loopback and a private socket only, stopped at the end of the session.

PostgreSQL refuses to run as root, so under root (make test, CI) the cluster belongs to the
`postgres` user Debian's package creates."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

USER = "onlycs"


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL's server binaries are missing: `make "
                               "system-packages` installs Debian's postgresql")
        self.bin = found
        self.root = Path(tempfile.mkdtemp(prefix="onlycs-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._owner:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)
        self._as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER,
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
        self._as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                        str(self.root / "server.log"), "-w", "-t", "60", "-o",
                        f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=on -c synchronous_commit=on", "start"])

    def _as_owner(self, argv: list[str]) -> subprocess.CompletedProcess:
        if self._owner:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=self.root)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={USER}"

    def new_database(self) -> str:
        """A database of its own for one test; returns its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def checkpoint(self) -> None:
        """Everything committed, written into the data files (for reading the raw bytes)."""
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute("CHECKPOINT")

    def raw_bytes(self) -> bytes:
        self.checkpoint()
        out = []
        for path in self.data.rglob("*"):
            if path.is_file():
                out.append(path.read_bytes())
        return b"".join(out)

    def pg_dump(self, dsn: str) -> str:
        return subprocess.run([str(self.bin / "pg_dump"), "-d", dsn], check=True,
                              capture_output=True, text=True).stdout

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_owner([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)
