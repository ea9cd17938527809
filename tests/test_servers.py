"""The launcher: start, stop and restart real servers on the same port and data dir."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from semcache_testing.pytest_plugin import start_or_fail
from semcache_testing.servers import (
    AzuriteServer,
    GCSServer,
    RedisClusterServer,
    RedisStackServer,
    S3Server,
    ServerError,
    _port_is_free,
    _resp,
)


@pytest.fixture
def fresh():
    """Servers a test starts itself (not the session ones), always cleaned up."""
    started = []

    def make(cls, **kw):
        server = cls(**kw)
        started.append(server)
        return start_or_fail(server)

    yield make
    for server in started:
        server.cleanup()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_redis_stack_restart_keeps_port_and_data(fresh, how: str) -> None:
    srv = fresh(RedisStackServer)
    port = srv.port
    assert _resp(port, "SET", "k", "v") == "OK"
    modules = {m[1] for m in _resp(port, "MODULE", "LIST")}
    assert {"search", "ReJSON"} <= modules
    getattr(srv, how)()
    assert not srv.running and _port_is_free(port)
    srv.start()
    assert srv.port == port and srv.url == f"redis://127.0.0.1:{port}"
    assert _resp(port, "GET", "k") == "v"


def test_redis_cluster_restart_keeps_data(fresh) -> None:
    import redis
    from redis.cluster import ClusterNode

    srv = fresh(RedisClusterServer)
    nodes = srv.startup_nodes
    assert len({n["port"] for n in nodes}) == 3

    def client():
        return redis.RedisCluster(
            startup_nodes=[ClusterNode(n["host"], n["port"]) for n in nodes])

    c = client()
    for i in range(30):  # spread over all three masters' slots
        c.set(f"k{i}", i)
    c.close()
    srv.kill()
    srv.start()
    assert srv.startup_nodes == nodes
    c = client()
    assert [int(c.get(f"k{i}")) for i in range(30)] == list(range(30))
    c.close()


def test_s3_restart_same_port(fresh) -> None:
    srv = fresh(S3Server)
    port = srv.port
    srv.stop()
    srv.start()
    assert srv.port == port
    with urllib.request.urlopen(srv.url + "/moto-api/", timeout=5) as r:
        assert r.status == 200


def _gcs(url: str, method: str = "GET", data: bytes | None = None,
         ctype: str = "application/json") -> bytes:
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def test_gcs_restart_keeps_data(fresh) -> None:
    srv = fresh(GCSServer)
    bucket = "b" + uuid.uuid4().hex[:8]
    _gcs(f"{srv.url}/storage/v1/b?project=test", "POST", json.dumps({"name": bucket}).encode())
    _gcs(f"{srv.url}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=k", "POST",
         b"value", "application/octet-stream")
    srv.kill()
    srv.start()
    assert _gcs(f"{srv.url}/storage/v1/b/{bucket}/o/k?alt=media") == b"value"


def test_azurite_restart_keeps_data(fresh) -> None:
    from azure.storage.blob import BlobServiceClient

    srv = fresh(AzuriteServer)
    svc = BlobServiceClient.from_connection_string(srv.connection_string)
    svc.create_container("cont1").upload_blob("k", b"value")
    svc.close()
    srv.stop()
    srv.start()
    svc = BlobServiceClient.from_connection_string(srv.connection_string)
    assert svc.get_container_client("cont1").download_blob("k").readall() == b"value"
    svc.close()


def test_start_failure_reports_log_tail() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        srv = RedisStackServer(port=busy.getsockname()[1], ready_timeout=10)
        try:
            with pytest.raises(ServerError, match="(?s)exited.*(in use|bind)"):
                srv.start()
            assert not srv.running
        finally:
            srv.cleanup()


def test_cli_start_status_stop(tmp_path) -> None:
    env_cmd = [sys.executable, "-m", "semcache_testing.servers"]
    # semcache_testing is the checkout's, not installed: run from the repository root
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([*env_cmd, "start", "redis-stack", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, check=True,
                         cwd=repo).stdout
    url = out.splitlines()[0]
    port = int(url.rsplit(":", 1)[1])
    try:
        assert _resp(port, "PING") == "PONG"
        status = subprocess.run([*env_cmd, "status"], capture_output=True, text=True,
                                timeout=60, check=True, cwd=repo).stdout
        assert "redis-stack" in status and "running" in status
    finally:
        subprocess.run([*env_cmd, "stop", "redis-stack"], timeout=60, check=True,
                       capture_output=True, cwd=repo)
    assert _port_is_free(port)
