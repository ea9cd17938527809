"""AzureBlobStore against Azurite (the session's ``azurite_connection_string``)."""

from __future__ import annotations

import time
import uuid

import pytest

from semcache import BackendTimeout, ConfigError
from semcache.exact.azure import AzureBlobStore
from semcache_testing.servers import AZURITE_ACCOUNT, AZURITE_KEY, HungServer, free_port
from tests.contracts.blob_store import BlobStoreContract
from tests.contracts.exact_store import RemoteExactStoreContract


def _conn(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")


@pytest.fixture(scope="session")
def azure_container(azurite_connection_string: str) -> str:
    name = "semcache-" + uuid.uuid4().hex[:8]
    s = AzureBlobStore(name, connection_string=azurite_connection_string,
                       create_container=True)
    s.ping()  # creates it
    s.close()
    return name


class TestAzureBlobStore(RemoteExactStoreContract, BlobStoreContract):
    @pytest.fixture
    def make_store(self, azurite_connection_string, azure_container):
        made = []

        def make(*, prefix="", clock=None, container=None, create=False):
            s = AzureBlobStore(container or azure_container, prefix=prefix,
                               connection_string=azurite_connection_string,
                               create_container=create, **({"clock": clock} if clock else {}))
            made.append(s)
            return s

        yield make
        for s in made:
            s.close()

    @pytest.fixture
    def missing_container(self) -> str:
        return "absent-" + uuid.uuid4().hex[:8]

    @pytest.fixture
    def store(self, azurite_connection_string, azure_container):
        s = AzureBlobStore.from_params(azure_blob_container=azure_container,
                                       azure_connection_string=azurite_connection_string,
                                       azure_path="semcache/cache")
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self, azure_container):
        s = AzureBlobStore.from_params(azure_blob_container=azure_container,
                                       azure_connection_string=_conn(free_port()),
                                       azure_timeout=0.3)
        yield s
        s.close()


def test_hung_endpoint_times_out(azure_container) -> None:
    with HungServer() as hung:
        s = AzureBlobStore.from_params(azure_blob_container=azure_container,
                                       azure_connection_string=_conn(hung.port),
                                       azure_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            s.get("ns:1")
        assert time.monotonic() - t0 < 3.0
        s.close()


def test_account_url_uses_default_credential_lazily() -> None:
    s = AzureBlobStore.from_params(azure_account_url="https://acct.blob.core.windows.net",
                                   azure_blob_container="answers")
    assert s._client_obj is None  # no credential chain walked until first use
    assert repr(s) == "AzureBlobStore(container='answers', prefix='')"


@pytest.mark.parametrize(("params", "bad"), [
    ({"azure_account_url": "https://a"}, "azure_blob_container"),
    ({"azure_blob_container": "c"}, "azure_account_url"),
    ({"azure_blob_container": "c", "azure_account_url": "acct.blob"}, "azure_account_url"),
    ({"azure_blob_container": "c", "azure_connection_string": "nonsense"},
     "azure_connection_string"),
    ({"azure_blob_container": "c", "azure_account_url": "https://a", "azure_key": "k"},
     "azure_key"),
    ({"azure_blob_container": "c", "azure_account_url": "https://a", "azure_timeout": -1},
     "azure_timeout"),
])
def test_from_params_names_the_bad_parameter(params, bad) -> None:
    with pytest.raises(ConfigError) as info:
        AzureBlobStore.from_params(**params)
    assert info.value.parameter == bad
