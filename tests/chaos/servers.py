"""Private Redis and PostgreSQL servers for chaos tests, on spare ports in temp dirs.

Chaos tests stop, restart and SIGKILL their servers, so they never use the shared
ones (6379/5432): each class here starts its own server from the Debian binaries
and removes everything it made on `cleanup()` (or at interpreter exit).

PostgreSQL refuses to run as root, so when the tests run as root, initdb and
pg_ctl run as the `postgres` OS user (`runuser -u postgres --`) on a data dir
that user owns.
"""

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SHARED_PORTS = frozenset({5432, 6379})
_LIVE: set = set()  # instances to clean up at exit if a test run forgot them


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_port(port: int | None) -> int:
    port = port or free_port()
    if port in SHARED_PORTS:
        raise ValueError(f"port {port} belongs to a shared service; chaos tests use their own")
    return port


def _wait_for(check, timeout: float, what: str, proc_dead=lambda: False, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc_dead():
            raise RuntimeError(f"{what} exited while starting{_log_tail(log)}")
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} not ready after {timeout} s{_log_tail(log)}")


def _log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return "\n--- " + str(log) + " ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    """True if `pid` runs; a zombie (dead, not reaped by its parent) counts as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@atexit.register
def _cleanup_leftovers() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.cleanup()


class PrivateRedis:
    """A redis-server child process on 127.0.0.1:`port` that keeps nothing on disk."""

    def __init__(self, port: int | None = None):
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise RuntimeError("redis-server not found: install the Debian package redis-server")
        self.port = _check_port(port)
        self.dir = Path(tempfile.mkdtemp(prefix="jobsite-chaos-redis-"))
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None
        _LIVE.add(self)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 10) -> "PrivateRedis":
        if self.running:
            return self
        args = ("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        args += ("--daemonize", "no", "--dir", str(self.dir))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = self.proc
        _wait_for(self.ping, timeout, f"redis-server on port {self.port}", lambda: proc.poll() is not None, self.log)
        return self

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM and wait (Redis saves nothing, so data is gone)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-whatever."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def restart(self) -> "PrivateRedis":
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> "PrivateRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<PrivateRedis {self.url} {'running' if self.running else 'stopped'}>"


def postgres_bindir() -> Path:
    """The directory of initdb/pg_ctl/postgres: `pg_config --bindir`, else /usr/lib/postgresql/*/bin."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)[::-1]
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via pg_config --bindir "
        "or /usr/lib/postgresql/*/bin: install the Debian package postgresql"
    )


# Fast but crash-safe against a killed *process*: the kernel still holds every write.
# synchronous_commit stays on: with it off a commit is acknowledged before its WAL
# leaves shared memory, so kill() loses the last ~0.6 s of acknowledged commits.
SERVER_SETTINGS = {"listen_addresses": "127.0.0.1", "fsync": "off", "full_page_writes": "off"}


class PrivatePostgres:
    """A PostgreSQL cluster of its own: temp data dir, 127.0.0.1:`port`, trust auth, no fsync.

    `settings` adds or overrides server settings (`-c name=value`), e.g.
    `{"synchronous_commit": "off"}` to see acknowledged commits lost on kill() (with fsync off it
    buys no speed: 2,000 autocommit inserts take ~0.17 s either way).
    """

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None):
        self.bindir = postgres_bindir()
        self.port = _check_port(port)
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.dir = Path(tempfile.mkdtemp(prefix="jobsite-chaos-pg-"))
        self.data = self.dir / "data"
        self.sockdir = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        _LIVE.add(self)
        self.sockdir.mkdir()
        self.log.touch()
        # PostgreSQL refuses to run as root: run it as `postgres` on files that user owns.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if not runuser:
                raise RuntimeError("running as root needs runuser (util-linux) to run PostgreSQL as postgres")
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs the `postgres` OS user (Debian package postgresql)") from None
            for path in (self.dir, self.sockdir, self.log):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.as_user = [runuser, "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        # Output goes to files, never pipes: the postmaster pg_ctl forks must not hold our pipes open.
        with tempfile.TemporaryFile() as out:
            result = subprocess.run(
                [*self.as_user, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                cwd=self.dir,
            )
            out.seek(0)
            result.stdout = out.read().decode(errors="replace")
        if check and result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{_log_tail(self.log)}")
        return result

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def _cluster_pids(self) -> list[int]:
        """Every live process of this cluster: PostgreSQL processes run with the data dir as cwd."""
        data = os.path.realpath(self.data)
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry.name}/cwd") == data and _pid_alive(int(entry.name)):
                        pids.append(int(entry.name))
        return pids

    @property
    def running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def start(self, timeout: float = 30) -> "PrivatePostgres":
        """initdb on first use, then `pg_ctl start -w` (crash recovery runs here after a kill)."""
        if self.running:
            return self
        if not (self.data / "PG_VERSION").exists():
            self._run(
                str(self.bindir / "initdb"),
                *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"),
            )
        self._wait_for_orphans(timeout)
        options = f"-p {self.port} -k {self.sockdir} " + " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        self._run(
            str(self.bindir / "pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", str(int(timeout)), "start"),
            timeout=timeout + 10,
        )
        return self

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """`pg_ctl stop -m smart|fast|immediate -w`; does nothing if the server is not running."""
        if not self.running:
            return
        self._run(
            str(self.bindir / "pg_ctl"),
            *("-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop"),
            timeout=timeout + 10,
        )

    def restart(self, mode: str = "fast") -> "PrivatePostgres":
        self.stop(mode)
        return self.start()

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL the postmaster, as a crash would; returns once its backends have died too."""
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._wait_for_orphans(timeout)

    def _wait_for_orphans(self, timeout: float) -> None:
        """Wait until no process of the cluster is left (backends notice the postmaster's death
        and exit), SIGKILL stragglers, then drop the lock files that name the dead postmaster.

        Until PID 1 reaps it, the killed postmaster is a zombie, which PostgreSQL's start-up
        checks of postmaster.pid and the socket's lock file would take for a running server.
        """
        pid = self._postmaster_pid()
        if pid is None or _pid_alive(pid):
            return
        deadline = time.monotonic() + timeout
        while (pids := self._cluster_pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for straggler in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(straggler, signal.SIGKILL)
        while self._cluster_pids():
            time.sleep(0.05)
        for stale in [self.data / "postmaster.pid", *self.sockdir.glob(".s.PGSQL.*")]:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def cleanup(self) -> None:
        """Stop the server (SIGKILL if a fast stop fails) and remove the temp dir."""
        try:
            self.stop("fast")
        except (RuntimeError, subprocess.SubprocessError):
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> "PrivatePostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<PrivatePostgres {self.url()} {'running' if self.running else 'stopped'}>"
