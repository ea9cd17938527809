"""Azure Blob Storage exact store: LiteLLM's ``azure_blob`` type.

Auth: ``azure_connection_string`` (Azurite, or an account key/SAS connection string), or
``azure_account_url`` with ``DefaultAzureCredential`` from azure-identity (managed
identity, environment, Azure CLI), which is what LiteLLM does. Timeouts are set on the
transport and the storage SDK's retry policy is replaced: its default backs off 15 s
before its first retry, so a dead endpoint would cost about a minute per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, missing
from . import _params as P
from ._blob import BlobStore

__all__ = ["PARAMS", "AzureBlobStore"]

try:
    import azure.core.exceptions as aexc
    from azure.core import MatchConditions
    from azure.storage.blob import BlobServiceClient, ContentSettings, LinearRetry
except ImportError:  # pragma: no cover - exercised only without the extra
    BlobServiceClient = None  # type: ignore[assignment,misc]

PARAMS = frozenset({
    "azure_account_url", "azure_blob_container", "azure_connection_string", "azure_path",
    "azure_create_container", "azure_timeout", "ttl",
})


class AzureBlobStore(BlobStore):
    name = "azure_blob"
    container_kind = "container"
    create_option = "azure_create_container"

    def __init__(
        self,
        container: str,
        *,
        account_url: str | None = None,
        connection_string: str | None = None,
        credential: Any = None,
        prefix: str = "",
        timeout: float = 2.0,
        retries: int = 1,
        create_container: bool = False,
        default_ttl: float | None = None,
        **blob_kwargs: Any,
    ) -> None:
        if BlobServiceClient is None:  # pragma: no cover
            raise missing("azure-storage-blob", "azure", "type='azure_blob'")
        if not (account_url or connection_string):
            raise ConfigError("type='azure_blob' needs azure_account_url or "
                              "azure_connection_string", parameter="azure_account_url")
        super().__init__(container, prefix=prefix, create=create_container,
                         default_ttl=default_ttl, **blob_kwargs)
        self._account_url = account_url
        self._connection_string = connection_string
        self._credential = credential
        self._own_credential: Any = None
        self._client_kwargs: dict[str, Any] = {
            "connection_timeout": timeout,
            "read_timeout": timeout,
            # the stubs say int; the policy computes with floats (sub-second backoff)
            "retry_policy": LinearRetry(backoff=0.2, random_jitter_range=0.1,  # type: ignore[arg-type]
                                        retry_total=retries),
        }

    @property
    def _container(self) -> Any:
        return self._client.get_container_client(self.container)

    def _make_client(self) -> Any:
        if self._connection_string:
            return BlobServiceClient.from_connection_string(
                self._connection_string, **self._client_kwargs)
        credential = self._credential
        if credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as exc:  # pragma: no cover
                raise missing("azure-identity", "azure", "azure_account_url auth") from exc
            credential = self._own_credential = DefaultAzureCredential()
        assert self._account_url is not None  # checked in __init__
        return BlobServiceClient(self._account_url, credential=credential,
                                 **self._client_kwargs)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The one place azure-core's errors become semcache's."""
        backend = self.name
        try:
            yield
        except BackendError:
            raise
        except (aexc.ServiceRequestTimeoutError, aexc.ServiceResponseTimeoutError) as exc:
            raise BackendTimeout(f"azure_blob: timed out: {exc}", backend=backend) from exc
        except (aexc.ServiceRequestError, aexc.ServiceResponseError) as exc:
            if "timed out" in str(exc).lower() or "timeout" in str(exc).lower():
                raise BackendTimeout(f"azure_blob: timed out: {exc}",
                                     backend=backend) from exc
            raise BackendUnavailable(f"azure_blob: unavailable: {exc}",
                                     backend=backend) from exc
        except aexc.ClientAuthenticationError as exc:
            raise BackendError(f"azure_blob: authentication failed: {exc}",
                               backend=backend) from exc
        except aexc.HttpResponseError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise BackendError(f"azure_blob: container {self.container!r} does not exist",
                                   backend=backend) from exc
            if (exc.status_code or 0) >= 500:
                raise BackendUnavailable(f"azure_blob: unavailable: {exc.message}",
                                         backend=backend) from exc
            raise BackendError(f"azure_blob: {exc.message}", backend=backend) from exc
        except aexc.AzureError as exc:
            raise BackendError(f"azure_blob: {exc}", backend=backend) from exc

    # -- primitives ---------------------------------------------------------------------
    def _container_exists(self) -> bool:
        return bool(self._container.exists())

    def _create_container(self) -> None:
        try:
            self._container.create_container()
        except aexc.ResourceExistsError:
            pass

    def _read(self, name: str) -> tuple[bytes, dict[str, str], Any] | None:
        try:
            download = self._container.download_blob(name)
            self._check_size(name, download.size)
            data = download.readall()
        except aexc.ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise
            return None
        props = download.properties
        return data, dict(props.metadata or {}), props.etag

    def _write(self, name: str, body: bytes, metadata: dict[str, str]) -> None:
        self._container.upload_blob(
            name, body, overwrite=True, metadata=metadata,
            content_settings=ContentSettings(content_type="application/octet-stream"))

    def _remove(self, name: str, version: Any = None) -> bool:
        kwargs: dict[str, Any] = {}
        if version is not None:
            kwargs = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        try:
            self._container.delete_blob(name, **kwargs)
        except aexc.ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise
            return False
        except aexc.ResourceModifiedError:
            return False  # rewritten since we read it: not ours to delete
        return True

    def _names(self, prefix: str) -> Iterator[str]:
        for blob in self._container.list_blobs(name_starts_with=prefix):
            yield blob.name

    def _close(self) -> None:
        super()._close()
        if self._own_credential is not None:
            self._own_credential.close()
            self._own_credential = None

    @classmethod
    def from_params(cls, **params: Any) -> AzureBlobStore:
        P.check_names(params, PARAMS, "azure_blob")
        container = P.require(params, "azure_blob_container", "azure_blob")
        if not isinstance(container, str):
            raise ConfigError("azure_blob_container must be a string",
                              parameter="azure_blob_container")
        url = P.opt_str(params, "azure_account_url")
        conn = P.opt_str(params, "azure_connection_string")
        if url is None and conn is None:
            raise ConfigError("type='azure_blob' needs azure_account_url "
                              "(or azure_connection_string)", parameter="azure_account_url")
        if url is not None and not url.startswith(("https://", "http://")):
            raise ConfigError("azure_account_url must be an http(s) URL",
                              parameter="azure_account_url")
        if conn is not None and "=" not in conn:
            raise ConfigError("azure_connection_string is not a connection string",
                              parameter="azure_connection_string")
        return cls(
            container,
            account_url=url,
            connection_string=conn,
            prefix=P.opt_str(params, "azure_path") or "",
            timeout=P.opt_float(params, "azure_timeout") or 2.0,
            create_container=bool(P.opt_bool(params, "azure_create_container")),
            default_ttl=P.opt_float(params, "ttl"),
        )
