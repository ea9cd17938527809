"""S3Store against moto's S3 server (the session's ``s3_endpoint``)."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from semcache import BackendTimeout, ConfigError
from semcache.exact.s3 import S3Store
from semcache_testing.servers import HungServer, free_port
from tests.contracts.blob_store import BlobStoreContract
from tests.contracts.exact_store import RemoteExactStoreContract

CREDS = {"s3_aws_access_key_id": "test", "s3_aws_secret_access_key": "test",
         "s3_region_name": "us-east-1"}


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    name = "semcache-" + uuid.uuid4().hex[:8]
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.close()
    return name


class TestS3Store(RemoteExactStoreContract, BlobStoreContract):
    @pytest.fixture
    def make_store(self, s3_endpoint, s3_bucket):
        made = []

        def make(*, prefix="", clock=None, container=None, create=False):
            s = S3Store(container or s3_bucket, prefix=prefix, endpoint_url=s3_endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test",
                        region_name="us-east-1", create_bucket=create,
                        **({"clock": clock} if clock else {}))
            made.append(s)
            return s

        yield make
        for s in made:
            s.close()

    @pytest.fixture
    def missing_container(self) -> str:
        return "absent-" + uuid.uuid4().hex[:8]

    @pytest.fixture
    def store(self, s3_endpoint, s3_bucket):
        s = S3Store.from_params(s3_bucket_name=s3_bucket, s3_endpoint_url=s3_endpoint,
                                s3_path="semcache/cache", **CREDS)
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self, s3_bucket):
        s = S3Store.from_params(s3_bucket_name=s3_bucket,
                                s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
                                s3_timeout=0.5, **CREDS)
        yield s
        s.close()


def test_hung_endpoint_times_out(s3_bucket) -> None:
    with HungServer() as hung:
        s = S3Store.from_params(s3_bucket_name=s3_bucket, s3_endpoint_url=hung.url,
                                s3_timeout=0.3, **CREDS)
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            s.get("ns:1")
        assert time.monotonic() - t0 < 3.0  # 2 attempts x 0.3 s + backoff
        s.close()


def test_path_style_addressing_and_config_merge(s3_endpoint) -> None:
    s = S3Store.from_params(s3_bucket_name="b", s3_endpoint_url=s3_endpoint,
                            s3_config={"read_timeout": 7}, **CREDS)
    cfg = s._client.meta.config
    assert cfg.s3["addressing_style"] == "path"
    assert cfg.read_timeout == 7 and cfg.connect_timeout == 2.0
    assert repr(s) == "S3Store(bucket='b', prefix='')"
    s.close()


@pytest.mark.parametrize(("params", "bad"), [
    ({}, "s3_bucket_name"),
    ({"s3_bucket_name": "b", "s3_bucket": "b"}, "s3_bucket"),
    ({"s3_bucket_name": "b", "s3_endpoint_url": "localhost:9000"}, "s3_endpoint_url"),
    ({"s3_bucket_name": "b", "s3_use_ssl": "maybe"}, "s3_use_ssl"),
    ({"s3_bucket_name": "b", "s3_verify": 3}, "s3_verify"),
    ({"s3_bucket_name": "b", "s3_config": {"no_such_option": 1}}, "s3_config"),
    ({"s3_bucket_name": "b", "s3_config": "fast"}, "s3_config"),
    ({"s3_bucket_name": "b", "ttl": "soon"}, "ttl"),
])
def test_from_params_names_the_bad_parameter(params, bad) -> None:
    with pytest.raises(ConfigError) as info:
        S3Store.from_params(**params)
    assert info.value.parameter == bad
