"""Private PostgreSQL servers for tests and benches: a primary and streaming replicas.

Everything runs as the `postgres` user (PostgreSQL refuses root) from data
directories under one temporary directory owned by postgres, on loopback ports
chosen here; `close()` stops every server it started (by the pid in its
postmaster.pid, never by name) and removes the directory. The machine's own
cluster on 5432 is never touched.

    with PrivateCluster() as primary, primary.replica() as replica:
        ...  # primary.url("stockroom"), replica.url("stockroom")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PGBIN = Path(os.environ.get("STOCKROOM_PGBIN", "/usr/lib/postgresql/15/bin"))
OWNER = "postgres"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run `cmd` as the postgres user (we are root on the development machines)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", OWNER, "--", *cmd]
    return run(cmd, **kwargs)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(start: int = 26200) -> int:
    """`start` or the next free port above it. Below the kernel's ephemeral range
    (32768-60999 on Linux): a server port in it may be taken by some client's
    outgoing connection, and PostgreSQL then listens on IPv6 only."""
    port = start
    while not port_free(port):
        port += 1
    return port


def owned_tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, OWNER, OWNER)
    path.chmod(0o700)
    return path


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def query(url: str, sql: str, params=None, *, autocommit: bool = True, timeout: float = 3):
    """One statement on `url`, rows back (or None for a statement without rows)."""
    import psycopg

    with psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout))) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def clone_standby(primary_port: int, pgdata: Path, port: int, *, extra: str = "") -> Server:
    """Clone the server on 127.0.0.1:`primary_port` into `pgdata` (pg_basebackup -R,
    WAL streamed, fast checkpoint) and start it as a hot standby on `port`; waits
    until it answers in recovery. The primary must accept replication connections
    from 127.0.0.1 for `postgres`. Used by `Replica` and bench/replica.py."""
    as_postgres([str(PGBIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary_port),
                 "-U", "postgres", "-D", str(pgdata), "-R", "-X", "stream",
                 "-c", "fast"])  # fmt: skip
    server = Server(pgdata, port)
    server._write_conf(extra)
    (pgdata / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    if os.geteuid() == 0:
        shutil.chown(pgdata / "pg_hba.conf", OWNER, OWNER)
    server.start()
    wait_for(
        lambda: query(server.url(), "SELECT pg_is_in_recovery()")[0][0], 60, "standby in recovery"
    )
    return server


class Server:
    """One postmaster on a data directory: start, stop, kill."""

    def __init__(self, pgdata: Path, port: int) -> None:
        self.pgdata = pgdata
        self.port = port

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _write_conf(self, extra: str = "") -> None:
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\n# stockroom ops/pgcluster.py\nport = {self.port}\n"
                f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.pgdata}'\n"
                "shared_buffers = 32MB\nfsync = on\nmax_connections = 60\n" + extra
            )

    def start(self) -> None:
        as_postgres([str(PGBIN / "pg_ctl"), "-D", str(self.pgdata),
                     "-l", str(self.pgdata / "server.log"), "-w", "-t", "60", "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if postmaster_pid(self.pgdata) is None:
            return
        subprocess.run(
            ["runuser", "-u", OWNER, "--", str(PGBIN / "pg_ctl"), "-D", str(self.pgdata),
             "-m", mode, "-w", "-t", "30", "stop"], capture_output=True, check=False,
        )  # fmt: skip
        pid = postmaster_pid(self.pgdata)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def running(self) -> bool:
        try:
            query(self.url(), "SELECT 1", timeout=1)
        except Exception:
            return False
        return True


class PrivateCluster(Server):
    """A fresh primary (initdb) on a free loopback port, accepting replication."""

    def __init__(self, port: int | None = None, *, prefix: str = "stockroom-pg-") -> None:
        self.root = owned_tempdir(prefix)
        super().__init__(self.root / "primary", port or free_port())
        self.replicas: list[Replica] = []

    def __enter__(self) -> PrivateCluster:
        try:
            self.create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create(self) -> None:
        as_postgres([str(PGBIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])  # fmt: skip
        self._write_conf("wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n")
        (self.pgdata / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n"
        )
        self.start()

    def create_database(self, name: str) -> None:
        query(self.url(), f'CREATE DATABASE "{name}"')

    @contextlib.contextmanager
    def replica(self, port: int | None = None):
        """A hot standby streaming from this primary (pg_basebackup -R), stopped after."""
        replica = Replica(self, port or free_port())
        self.replicas.append(replica)
        try:
            replica.create()
            yield replica
        finally:
            replica.stop("immediate")

    def close(self) -> None:
        for replica in self.replicas:
            replica.stop("immediate")
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class Replica(Server):
    def __init__(self, primary: PrivateCluster, port: int) -> None:
        super().__init__(primary.root / f"replica-{port}", port)
        self.primary = primary

    def create(self) -> None:
        clone_standby(self.primary.port, self.pgdata, self.port)

    def pause_replay(self) -> None:
        query(self.url(), "SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        query(self.url(), "SELECT pg_wal_replay_resume()")

    def caught_up(self) -> bool:
        """Whether the replica has replayed everything the primary has written."""
        (lsn,) = query(self.primary.url(), "SELECT pg_current_wal_lsn()")[0]
        return bool(query(self.url(), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])[0][0])
