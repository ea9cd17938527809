"""GCSStore against fake-gcs-server (the session's ``gcs_endpoint``)."""

from __future__ import annotations

import time
import uuid

import pytest

from semcache import BackendTimeout, ConfigError
from semcache.exact.gcs import GCSStore
from semcache_testing.servers import HungServer, free_port
from tests.contracts.blob_store import BlobStoreContract
from tests.contracts.exact_store import RemoteExactStoreContract


@pytest.fixture(scope="session")
def gcs_bucket(gcs_endpoint: str) -> str:
    name = "semcache-" + uuid.uuid4().hex[:8]
    s = GCSStore(name, endpoint_url=gcs_endpoint, create_bucket=True)
    s.ping()  # creates it
    s.close()
    return name


class TestGCSStore(RemoteExactStoreContract, BlobStoreContract):
    @pytest.fixture
    def make_store(self, gcs_endpoint, gcs_bucket):
        made = []

        def make(*, prefix="", clock=None, container=None, create=False):
            s = GCSStore(container or gcs_bucket, prefix=prefix, endpoint_url=gcs_endpoint,
                         create_bucket=create, **({"clock": clock} if clock else {}))
            made.append(s)
            return s

        yield make
        for s in made:
            s.close()

    @pytest.fixture
    def missing_container(self) -> str:
        return "absent-" + uuid.uuid4().hex[:8]

    @pytest.fixture
    def store(self, gcs_endpoint, gcs_bucket):
        s = GCSStore.from_params(gcs_bucket_name=gcs_bucket, gcs_endpoint_url=gcs_endpoint,
                                 gcs_path="semcache/cache")
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self, gcs_bucket):
        s = GCSStore.from_params(gcs_bucket_name=gcs_bucket, gcs_timeout=0.3,
                                 gcs_endpoint_url=f"http://127.0.0.1:{free_port()}")
        yield s
        s.close()


def test_hung_endpoint_is_cut_off(gcs_bucket) -> None:
    with HungServer() as hung:
        s = GCSStore.from_params(gcs_bucket_name=gcs_bucket, gcs_endpoint_url=hung.url,
                                 gcs_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            s.get("ns:1")
        assert time.monotonic() - t0 < 3.0
        s.close()


@pytest.mark.parametrize(("params", "bad"), [
    ({}, "gcs_bucket_name"),
    ({"gcs_bucket_name": "b", "gcs_bucket": "b"}, "gcs_bucket"),
    ({"gcs_bucket_name": "b", "gcs_path_service_account": "/nonexistent/sa.json"},
     "gcs_path_service_account"),
    ({"gcs_bucket_name": "b", "gcs_endpoint_url": "localhost:4443"}, "gcs_endpoint_url"),
    ({"gcs_bucket_name": "b", "gcs_path": 3}, "gcs_path"),
    ({"gcs_bucket_name": "b", "ttl": 0}, "ttl"),
])
def test_from_params_names_the_bad_parameter(params, bad) -> None:
    with pytest.raises(ConfigError) as info:
        GCSStore.from_params(**params)
    assert info.value.parameter == bad


def test_constructor_does_no_io() -> None:
    # no credentials lookup (which could probe a metadata server) until first use
    s = GCSStore.from_params(gcs_bucket_name="b", gcs_path="/a/b/")
    assert s._client_obj is None and s.prefix == "a/b/"
    assert repr(s) == "GCSStore(bucket='b', prefix='a/b/')"
