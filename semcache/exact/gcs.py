"""Google Cloud Storage exact store: LiteLLM's ``gcs`` type.

Credentials: ``gcs_path_service_account`` (a service-account JSON file), else the
environment's application-default credentials; with ``gcs_endpoint_url`` (an emulator
such as fake-gcs-server) anonymous credentials. Every call gets a (connect, read)
timeout and a retry bounded by a short deadline: the library's default would retry a
dead endpoint for 120 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, missing
from . import _params as P
from ._blob import BlobStore

__all__ = ["PARAMS", "GCSStore"]

try:
    import google.api_core.exceptions as gexc
    import google.auth.exceptions
    import requests.exceptions
    from google.cloud import storage
    from google.cloud.storage.retry import DEFAULT_RETRY
except ImportError:  # pragma: no cover - exercised only without the extra
    storage = None

PARAMS = frozenset({
    "gcs_bucket_name", "gcs_path_service_account", "gcs_path", "gcs_endpoint_url",
    "gcs_project", "gcs_create_bucket", "gcs_timeout", "ttl",
})


class GCSStore(BlobStore):
    name = "gcs"
    container_kind = "bucket"
    create_option = "gcs_create_bucket"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        service_account_path: str | None = None,
        endpoint_url: str | None = None,
        project: str | None = None,
        timeout: float = 2.0,
        create_bucket: bool = False,
        default_ttl: float | None = None,
        **blob_kwargs: Any,
    ) -> None:
        if storage is None:  # pragma: no cover
            raise missing("google-cloud-storage", "gcs", "type='gcs'")
        super().__init__(bucket, prefix=prefix, create=create_bucket,
                         default_ttl=default_ttl, **blob_kwargs)
        self._service_account_path = service_account_path
        self._endpoint_url = endpoint_url
        self._project = project
        self._timeout = (timeout, timeout)
        # retry transient errors (and refused connections) only until this deadline
        self._retry = DEFAULT_RETRY.with_timeout(2 * timeout)

    def _make_client(self) -> Any:
        if self._endpoint_url:
            from google.auth.credentials import AnonymousCredentials

            return storage.Client(project=self._project or "semcache",
                                  credentials=AnonymousCredentials(),
                                  client_options={"api_endpoint": self._endpoint_url})
        if self._service_account_path:
            return storage.Client.from_service_account_json(
                self._service_account_path, project=self._project)
        return storage.Client(project=self._project)

    @property
    def _bucket(self) -> Any:
        return self._client.bucket(self.container)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The one place google-cloud-storage's (and requests') errors become ours."""
        backend = self.name
        try:
            yield
        except BackendError:
            raise
        except gexc.RetryError as exc:
            if isinstance(exc.cause, requests.exceptions.ConnectionError) and not isinstance(
                    exc.cause, requests.exceptions.Timeout):
                raise BackendUnavailable(f"gcs: unavailable: {exc.cause}",
                                         backend=backend) from exc
            raise BackendTimeout(f"gcs: gave up retrying: {exc}", backend=backend) from exc
        except requests.exceptions.Timeout as exc:
            raise BackendTimeout(f"gcs: timed out: {exc}", backend=backend) from exc
        except (requests.exceptions.ConnectionError,
                google.auth.exceptions.TransportError) as exc:
            raise BackendUnavailable(f"gcs: unavailable: {exc}", backend=backend) from exc
        except (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.TooManyRequests,
                gexc.BadGateway, gexc.GatewayTimeout) as exc:
            raise BackendUnavailable(f"gcs: unavailable: {exc}", backend=backend) from exc
        except gexc.GoogleAPICallError as exc:
            raise BackendError(f"gcs: {exc}", backend=backend) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            raise BackendError(f"gcs: credentials: {exc}", backend=backend) from exc

    # -- primitives ---------------------------------------------------------------------
    def _container_exists(self) -> bool:
        return bool(self._bucket.exists(timeout=self._timeout, retry=self._retry))

    def _create_container(self) -> None:
        try:
            self._client.create_bucket(self.container, timeout=self._timeout,
                                       retry=self._retry)
        except gexc.Conflict:
            pass  # created meanwhile by someone else: fine

    def _read(self, name: str) -> tuple[bytes, dict[str, str], Any] | None:
        for _ in range(3):  # replaced between the two requests: read the new one
            blob = self._bucket.get_blob(name, timeout=self._timeout, retry=self._retry)
            if blob is None:
                return None
            self._check_size(name, blob.size)
            try:
                data = blob.download_as_bytes(
                    if_generation_match=blob.generation, timeout=self._timeout,
                    retry=self._retry)
            except gexc.NotFound:
                return None
            except gexc.PreconditionFailed:
                continue
            return data, dict(blob.metadata or {}), blob.generation
        return None

    def _write(self, name: str, body: bytes, metadata: dict[str, str]) -> None:
        blob = self._bucket.blob(name)
        blob.metadata = metadata
        # an overwrite is idempotent: retrying it is safe, unlike the library's
        # default for uploads without a generation precondition
        blob.upload_from_string(body, content_type="application/octet-stream",
                                timeout=self._timeout, retry=self._retry)

    def _remove(self, name: str, version: Any = None) -> bool:
        try:
            self._bucket.delete_blob(name, if_generation_match=version,
                                     timeout=self._timeout, retry=self._retry)
        except (gexc.NotFound, gexc.PreconditionFailed):
            return False
        return True

    def _names(self, prefix: str) -> Iterator[str]:
        for blob in self._client.list_blobs(self.container, prefix=prefix,
                                            timeout=self._timeout, retry=self._retry):
            yield blob.name


    @classmethod
    def from_params(cls, **params: Any) -> GCSStore:
        P.check_names(params, PARAMS, "gcs")
        bucket = P.require(params, "gcs_bucket_name", "gcs")
        if not isinstance(bucket, str):
            raise ConfigError("gcs_bucket_name must be a string", parameter="gcs_bucket_name")
        sa_path = P.opt_str(params, "gcs_path_service_account")
        if sa_path is not None and not os.path.isfile(sa_path):
            raise ConfigError(f"gcs_path_service_account: no such file {sa_path!r}",
                              parameter="gcs_path_service_account")
        endpoint = P.opt_str(params, "gcs_endpoint_url")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError("gcs_endpoint_url must be an http(s) URL",
                              parameter="gcs_endpoint_url")
        return cls(
            bucket,
            prefix=P.opt_str(params, "gcs_path") or "",
            service_account_path=sa_path,
            endpoint_url=endpoint,
            project=P.opt_str(params, "gcs_project"),
            timeout=P.opt_float(params, "gcs_timeout") or 2.0,
            create_bucket=bool(P.opt_bool(params, "gcs_create_bucket")),
            default_ttl=P.opt_float(params, "ttl"),
        )
