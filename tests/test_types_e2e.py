"""Every exact-store cache type end to end through ``Cache(type=...)`` with LiteLLM's
parameter names, against the real servers the project's launcher starts."""

from __future__ import annotations

import uuid

import pytest

import semcache
from semcache import Cache

Q = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "What is 2+2?"}])
A = {"choices": [{"message": {"role": "assistant", "content": "4"}}]}


@pytest.fixture(params=["redis", "redis-cluster", "s3", "gcs", "azure_blob",
                        "redis-two-tier"])
def params(request):
    kind = request.param
    if kind == "redis":
        url = request.getfixturevalue("redis_stack_url")
        host, port = url.removeprefix("redis://").split(":")
        return {"type": "redis", "host": host, "port": int(port), "password": None}
    if kind == "redis-two-tier":
        return {"type": "redis", "redis_url": request.getfixturevalue("redis_stack_url"),
                "max_size_in_memory": 100, "default_in_memory_ttl": 30}
    if kind == "redis-cluster":
        return {"type": "redis",
                "redis_startup_nodes": request.getfixturevalue("redis_cluster_nodes")}
    bucket = "semcache-e2e"
    if kind == "s3":
        return {"type": "s3", "s3_bucket_name": bucket, "s3_region_name": "us-east-1",
                "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
                "s3_aws_access_key_id": "test", "s3_aws_secret_access_key": "test",
                "s3_path": "cache/e2e", "s3_create_bucket": True}
    if kind == "gcs":
        return {"type": "gcs", "gcs_bucket_name": bucket, "gcs_path": "cache/e2e",
                "gcs_endpoint_url": request.getfixturevalue("gcs_endpoint"),
                "gcs_create_bucket": True}
    return {"type": "azure_blob", "azure_blob_container": bucket,
            "azure_connection_string": request.getfixturevalue("azurite_connection_string"),
            "azure_create_container": True}


def test_roundtrip_flush_and_isolation(params, clock):
    ns = "e2e" + uuid.uuid4().hex[:8]
    c = Cache(**params, namespace=ns, ttl=600, clock=clock)
    other = Cache(**params, namespace=ns + "-other")
    try:
        assert c.lookup(**Q) is None
        key = c.add_cache(A, **Q)
        other.add_cache({"other": True}, **Q)
        hit = c.lookup(**Q)
        assert hit.value == A and hit.stage == "exact" and hit.key == key
        assert hit.metadata["backend"] == c.store.name
        assert other.get_cache(**Q) == {"other": True}  # namespaces never mix
        clock.advance(601)  # the record's expiry is honoured by every backend
        assert c.lookup(**Q) is None
        c.add_cache(A, **Q)
        assert c.flush() >= 1
        assert c.lookup(**Q) is None
        assert other.get_cache(**Q) == {"other": True}  # flush is scoped
        assert c.ping()["store"]["ok"]
    finally:
        other.flush()
        c.close()
        other.close()


def test_dead_server_is_a_counted_miss_not_an_error():
    # nothing listens on port 1: every call fails fast and the cache fails open
    c = Cache(type="redis", host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    hit, meta = c.lookup_with_metadata(**Q)
    assert hit is None and meta["errors"]
    assert c.add_cache(A, **Q) is None
    assert c.stats()["errors"]["store"] == 2
    assert c.ping()["store"]["ok"] is False


def test_litellm_style_enable_cache(redis_stack_url):
    try:
        semcache.enable_cache(type="redis", redis_url=redis_stack_url,
                              supported_call_types=["completion", "acompletion"])
        assert semcache.cache.store.name.startswith("redis")
        assert semcache.cache.supported_call_types == {"completion", "acompletion"}
    finally:
        semcache.cache.close()
        semcache.disable_cache()
