"""A pg_auto_failover formation on this machine: a monitor, a primary and a secondary.

    python -m ops.autofailover up [--dir D] [--base-port 56100] [--async]
    python -m ops.autofailover status --dir D
    python -m ops.autofailover down --dir D

Debian's `postgresql-15-auto-failover` (`pg_autoctl`). Every server runs as the
`postgres` user from data directories under one directory owned by it, on
loopback ports `base_port` (monitor; 26100 or the next free, below the
kernel's ephemeral port range), `base_port + 1` and `+ 2` (the nodes); the
machine's own cluster (5432) is never touched. `down` stops the keepers (whole
process groups, started here) and removes the directory.

Replication is synchronous by default: both nodes are in the replication quorum
and the formation's `number_sync_standbys` is 0, which pg_auto_failover turns
into `synchronous_standby_names = 'ANY 1 (<the standby>)'` (with one standby,
0 is the only valid value; it means "one standby must confirm while one is
there"; while the standby is down the primary goes to `wait_primary` and accepts
writes alone). `sync=False` takes both nodes out of the quorum: asynchronous
streaming (`synchronous_standby_names = ''`).

The app connects with `uri()`: both nodes in one multi-host URL with
`target_session_attrs=read-write`, so libpq finds whichever is primary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ops.pgcluster import OWNER, PGBIN, owned_tempdir, port_free, postmaster_pid, query, wait_for

PG_AUTOCTL = shutil.which("pg_autoctl") or "/usr/bin/pg_autoctl"
NODES = ("node1", "node2")


def find_base_port(start: int = 26100) -> int:
    """The first of three consecutive free loopback ports from `start` on."""
    port = start
    while not all(port_free(port + i) for i in range(3)):
        port += 10
    return port


@dataclass
class NodeState:
    name: str
    port: int
    reported: str
    assigned: str
    health: int

    @property
    def settled(self) -> bool:
        return self.reported == self.assigned


class AutoFailover:
    def __init__(
        self,
        root: Path | None = None,
        *,
        base_port: int | None = None,
        dbname: str = "stockroom",
        sync: bool = True,
        monitor_settings: dict | None = None,
    ) -> None:
        self.root = Path(root) if root else None
        # Outside the kernel's ephemeral range (32768-60999 here): a port in it can
        # be taken at any moment by some client's outgoing connection, and then
        # PostgreSQL listens on IPv6 only and the node is unreachable on 127.0.0.1.
        self.base_port = base_port or find_base_port()
        self.dbname = dbname
        self.sync = sync
        self.monitor_settings = monitor_settings or {}
        self.keepers: dict[str, subprocess.Popen] = {}

    # --- layout -----------------------------------------------------------

    def pgdata(self, name: str) -> Path:
        return self.root / name

    def port(self, name: str) -> int:
        return self.base_port + (0 if name == "monitor" else 1 + NODES.index(name))

    def node_url(self, name: str, dbname: str | None = None) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port(name)}/{dbname or self.dbname}"

    def uri(self, dbname: str | None = None) -> str:
        hosts = ",".join(f"127.0.0.1:{self.port(n)}" for n in NODES)
        return (
            f"postgres://postgres@{hosts}/{dbname or self.dbname}?target_session_attrs=read-write"
        )

    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.port('monitor')}/pg_auto_failover"

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
        env.update(
            {
                "XDG_CONFIG_HOME": str(self.root / "config"),
                "XDG_DATA_HOME": str(self.root / "share"),
                "XDG_RUNTIME_DIR": str(self.root / "run"),
                "PG_CONFIG": str(PGBIN / "pg_config"),
            }
        )
        return env

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", OWNER, "--"] if os.geteuid() == 0 else []
        return [*prefix, "env", *(f"{k}={v}" for k, v in self._env().items()), PG_AUTOCTL, *args]

    def autoctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(self._cmd(*args), capture_output=True, timeout=timeout, check=False)
        stdout = done.stdout.decode(errors="replace")
        if done.returncode:
            stderr = done.stderr.decode(errors="replace")
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {stderr[-2000:]}")
        return stdout

    def _keeper(self, name: str, *args: str) -> None:
        """Start a long-running pg_autoctl in its own process group (stopped in down())."""
        log = (self.root / f"{name}.log").open("ab")
        self.keepers[name] = subprocess.Popen(
            self._cmd(*args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    # --- up / down --------------------------------------------------------

    def up(self, timeout: float = 240) -> AutoFailover:
        for name in ("monitor", *NODES):
            if not port_free(self.port(name)):
                raise RuntimeError(f"port {self.port(name)} is taken: pick another --base-port")
        if self.root is None:
            self.root = owned_tempdir("stockroom-autofailover-")
        for sub in ("config", "share", "run"):
            (self.root / sub).mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.root / sub, OWNER, OWNER)
        (self.root / "formation.json").write_text(
            json.dumps({"base_port": self.base_port, "dbname": self.dbname, "sync": self.sync})
        )
        pgctl = str(PGBIN / "pg_ctl")
        self.autoctl("create", "monitor", "--pgctl", pgctl, "--pgdata", str(self.pgdata("monitor")),
                     "--pgport", str(self.port("monitor")), "--hostname", "127.0.0.1",
                     "--auth", "trust", "--no-ssl", timeout=120)  # fmt: skip
        self._keeper("monitor", "run", "--pgdata", str(self.pgdata("monitor")))
        wait_for(self._monitor_up, 60, "pg_auto_failover monitor")
        # This formation's own monitor (never a shared server): its failure detection.
        for name, value in self.monitor_settings.items():
            query(
                self.node_url("monitor", "pg_auto_failover"),
                f"ALTER SYSTEM SET {name} = {int(value)}",
            )
        if self.monitor_settings:
            query(self.node_url("monitor", "pg_auto_failover"), "SELECT pg_reload_conf()")
        for i, name in enumerate(NODES):
            self._keeper(name, "create", "postgres", "--pgctl", pgctl,
                         "--pgdata", str(self.pgdata(name)), "--pgport", str(self.port(name)),
                         "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl",
                         "--dbname", self.dbname, "--monitor", self.monitor_uri(),
                         "--name", name, "--candidate-priority", "50",
                         "--replication-quorum", "true" if self.sync else "false",
                         "--run")  # fmt: skip
            wanted = {"primary", "wait_primary", "single"} if i == 0 else {"secondary"}
            self.wait_state(lambda s, n=name, w=wanted: n in s and s[n].reported in w, timeout)
        self.wait_healthy(timeout)
        return self

    def _monitor_up(self) -> bool:
        try:
            query(self.node_url("monitor", "pg_auto_failover"), "SELECT 1", timeout=1)
        except Exception:
            return False
        return True

    def down(self) -> None:
        """Stop every keeper and server of the formation, remove its directory."""
        if self.root is None:
            return
        for name in (*NODES, "monitor"):
            if self.pgdata(name).exists():
                with contextlib.suppress(Exception):
                    self.autoctl("stop", "--pgdata", str(self.pgdata(name)), "--fast", timeout=20)
        for proc in self.keepers.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        for name in (*NODES, "monitor"):  # a keeper started by another process (the CLI)
            for pid in (self._keeper_pid(name), postmaster_pid(self.pgdata(name))):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(os.getpgid(pid), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def _keeper_pid(self, name: str) -> int | None:
        pidfile = self.root / "run" / "pg_autoctl" / str(self.pgdata(name)).lstrip("/")
        try:
            return int((pidfile / "pg_autoctl.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def __enter__(self) -> AutoFailover:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc) -> None:
        self.down()

    # --- state ------------------------------------------------------------

    def state(self) -> dict[str, NodeState]:
        rows = query(
            self.node_url("monitor", "pg_auto_failover"),
            "SELECT nodename, nodeport, reportedstate::text, goalstate::text, health "
            "FROM pgautofailover.node WHERE formationid = 'default'",
        )
        return {r[0]: NodeState(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    def wait_state(self, predicate, timeout: float) -> dict[str, NodeState]:
        def check():
            try:
                state = self.state()
            except Exception:
                return None
            self._nudge(state)
            return state if predicate(state) else None

        return wait_for(check, timeout, "pg_auto_failover state", interval=0.2)

    def _nudge(self, state: dict[str, NodeState]) -> None:
        """A standby's pg_basebackup waits for a checkpoint on the primary (a spread
        one takes minutes): ask the primary for an immediate one while it waits."""
        if any(s.reported in ("wait_standby", "catchingup") for s in state.values()):
            for s in state.values():
                if s.reported in ("primary", "wait_primary", "single"):
                    with contextlib.suppress(Exception):
                        query(self.node_url(s.name), "CHECKPOINT", timeout=2)

    def primary(self) -> str:
        return next(
            s.name
            for s in self.state().values()
            if s.reported in ("primary", "wait_primary", "single")
            and s.assigned in ("primary", "wait_primary", "single")
        )

    def wait_healthy(self, timeout: float = 240) -> dict[str, NodeState]:
        """Both nodes settled, one `primary` and one `secondary` (replication back)."""
        return self.wait_state(
            lambda s: (
                sorted((x.reported, x.assigned) for x in s.values())
                == [("primary", "primary"), ("secondary", "secondary")]
            ),
            timeout,
        )

    def set_sync(self, sync: bool) -> None:
        """Both nodes in (synchronous) or out of (asynchronous) the replication quorum."""
        if sync == self.sync:
            return
        for name in NODES:
            self.autoctl("set", "node", "replication-quorum", "true" if sync else "false",
                         "--pgdata", str(self.pgdata(name)))  # fmt: skip
        self.sync = sync
        expected = "" if not sync else "ANY 1"

        def applied() -> bool:
            try:
                primary = self.primary()
                (names,) = query(self.node_url(primary), "SHOW synchronous_standby_names")[0]
            except Exception:
                return False
            return names.startswith(expected) if sync else names == ""

        wait_for(applied, 60, "synchronous_standby_names", interval=0.2)

    def synchronous_standby_names(self) -> str:
        return query(self.node_url(self.primary()), "SHOW synchronous_standby_names")[0][0]

    # --- faults -----------------------------------------------------------

    def kill_primary_postmaster(self) -> str:
        """SIGKILL the primary's postmaster (its keeper notices; the monitor decides)."""
        name = self.primary()
        pid = postmaster_pid(self.pgdata(name))
        if pid is None:
            raise RuntimeError(f"{name} has no postmaster.pid")
        os.kill(pid, signal.SIGKILL)
        return name

    def kill_primary_node(self) -> str:
        """SIGKILL the primary's keeper and PostgreSQL together (the machine is gone):
        nothing restarts it, the monitor must fail over. `restart_node` brings it back."""
        name = self.primary()
        proc = self.keepers.get(name)
        if proc is None:
            raise RuntimeError(f"{name}'s keeper was not started by this process")
        pid = postmaster_pid(self.pgdata(name))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the keeper's session: all its processes
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return name

    def restart_node(self, name: str) -> None:
        """Start a killed node's keeper again: it rejoins as a secondary (pg_rewind)."""
        (self.pgdata(name) / "postmaster.pid").unlink(missing_ok=True)
        self._keeper(name, "run", "--pgdata", str(self.pgdata(name)))

    def wait_writable(self, timeout: float = 120) -> str:
        """Wait until a node accepts writes again (through the app's multi-host URL);
        its name. After a killed postmaster that is either the other node (the
        monitor failed over) or the same one (its keeper restarted PostgreSQL,
        crash recovery, before the monitor decided): both keep every commit."""

        def writable():
            try:
                rows = query(
                    self.uri(),
                    "SELECT inet_server_port(), pg_is_in_recovery(), "
                    "current_setting('transaction_read_only')",
                    timeout=1,
                )
            except Exception:
                return None
            port, recovering, read_only = rows[0]
            if recovering or read_only == "on":
                return None
            return next(n for n in NODES if self.port(n) == port)

        return wait_for(writable, timeout, "a writable primary", interval=0.05)

    def failover(self, timeout: float = 120) -> tuple[str, str, float]:
        """Kill the primary's postmaster; (old, new, seconds until a node accepts writes)."""
        started = time.monotonic()
        old = self.kill_primary_postmaster()
        new = self.wait_writable(timeout)
        return old, new, time.monotonic() - started


def _load(root: str) -> AutoFailover:
    conf = json.loads((Path(root) / "formation.json").read_text())
    return AutoFailover(Path(root), base_port=conf["base_port"], dbname=conf["dbname"],
                        sync=conf["sync"])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--dir", help="the formation's directory (up: created if missing)")
    parser.add_argument(
        "--base-port",
        type=int,
        help="monitor's port, nodes on the next two (default: 26100 or the next free)",
    )
    parser.add_argument("--dbname", default="stockroom")
    parser.add_argument("--async", dest="sync", action="store_false")
    args = parser.parse_args(argv)
    if args.action == "up":
        root = Path(args.dir) if args.dir else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(root, OWNER, OWNER)
        formation = AutoFailover(root, base_port=args.base_port, dbname=args.dbname, sync=args.sync)
        try:
            formation.up()
        except BaseException:
            formation.down()
            raise
        # The keepers outlive this command (own sessions); `down --dir` stops them.
        print(f"dir={formation.root}\nDATABASE_URL={formation.uri()}")
        print(f"synchronous_standby_names={formation.synchronous_standby_names()!r}")
        return 0
    if not args.dir:
        parser.error("--dir is required")
    formation = _load(args.dir)
    if args.action == "down":
        formation.down()
        print("down")
        return 0
    for s in formation.state().values():
        print(
            f"{s.name} port={s.port} reported={s.reported} assigned={s.assigned} health={s.health}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
