"""Amazon S3 (or any S3-compatible endpoint) exact store: LiteLLM's ``s3`` type.

Path-style addressing whenever ``s3_endpoint_url`` is given (MinIO, moto, Ceph: their
buckets are not DNS names). botocore's timeouts and retries are set explicitly (2 s
connect/read, 2 attempts in "standard" mode) so a dead or hung endpoint costs seconds,
not botocore's default 60 s x 5. Credentials not given fall back to botocore's chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError, missing
from . import _params as P
from ._blob import BlobStore

__all__ = ["PARAMS", "S3Store"]

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None

PARAMS = frozenset({
    "s3_bucket_name", "s3_region_name", "s3_endpoint_url", "s3_aws_access_key_id",
    "s3_aws_secret_access_key", "s3_aws_session_token", "s3_path", "s3_use_ssl",
    "s3_verify", "s3_api_version", "s3_config", "s3_create_bucket", "s3_timeout", "ttl",
})

_UNAVAILABLE_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable",
                      "SlowDown", "RequestTimeout"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Store(BlobStore):
    name = "s3"
    container_kind = "bucket"
    create_option = "s3_create_bucket"

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        region_name: str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        api_version: str | None = None,
        config: Any = None,
        timeout: float = 2.0,
        retries: int = 1,
        create_bucket: bool = False,
        default_ttl: float | None = None,
        **blob_kwargs: Any,
    ) -> None:
        if boto3 is None:  # pragma: no cover
            raise missing("boto3", "s3", "type='s3'")
        super().__init__(bucket, prefix=prefix, create=create_bucket,
                         default_ttl=default_ttl, **blob_kwargs)
        self.region_name = region_name
        ours = botocore.config.Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": retries + 1, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        if isinstance(config, dict):
            config = botocore.config.Config(**config)
        # the caller's s3_config wins where it says something
        self._config = ours.merge(config) if config is not None else ours
        self._client_kwargs = {
            "region_name": region_name,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
            "use_ssl": use_ssl,
            "verify": verify,
            "api_version": api_version,
        }

    def _make_client(self) -> Any:
        return boto3.session.Session().client("s3", config=self._config,
                                              **self._client_kwargs)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The one place botocore's errors become semcache's."""
        backend = self.name
        try:
            yield
        except BackendError:
            raise
        except (botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError) as exc:
            raise BackendTimeout(f"s3: timed out: {exc}", backend=backend) from exc
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ConnectionError) as exc:
            raise BackendUnavailable(f"s3: unavailable: {exc}", backend=backend) from exc
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise BackendError(f"s3: bucket {self.container!r} does not exist",
                                   backend=backend) from exc
            if code in _UNAVAILABLE_CODES:
                raise BackendUnavailable(f"s3: unavailable: {exc}", backend=backend) from exc
            raise BackendError(f"s3: {exc}", backend=backend) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise BackendError(
                "s3: no AWS credentials (set s3_aws_access_key_id/s3_aws_secret_access_key "
                "or the usual AWS environment)", backend=backend) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise BackendError(f"s3: {exc}", backend=backend) from exc

    # -- primitives ---------------------------------------------------------------------
    def _container_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.container)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket"):
                return False
            raise
        return True

    def _create_container(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.container}
        if self.region_name and self.region_name != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region_name}
        try:
            self._client.create_bucket(**kwargs)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise

    def _read(self, name: str) -> tuple[bytes, dict[str, str], Any] | None:
        try:
            obj = self._client.get_object(Bucket=self.container, Key=name)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY_CODES:
                return None
            raise
        with obj["Body"] as body:
            self._check_size(name, obj.get("ContentLength"))
            data = body.read()
        return data, obj.get("Metadata", {}), obj.get("ETag")

    def _write(self, name: str, body: bytes, metadata: dict[str, str]) -> None:
        self._client.put_object(Bucket=self.container, Key=name, Body=body,
                                Metadata=metadata, ContentType="application/octet-stream")

    def _remove(self, name: str, version: Any = None) -> bool:
        # S3's DeleteObject reports success for absent keys: HEAD first for the count.
        # (No conditional delete on ETag here: not every S3-compatible server has it;
        # the window is one round trip and the loser re-stores on its next miss.)
        try:
            self._client.head_object(Bucket=self.container, Key=name)
        except botocore.exceptions.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY_CODES:
                return False
            raise
        self._client.delete_object(Bucket=self.container, Key=name)
        return True

    def _remove_many(self, names: Sequence[str]) -> int:
        removed = 0
        for start in range(0, len(names), 1000):  # DeleteObjects takes 1000 at most
            chunk = names[start:start + 1000]
            out = self._client.delete_objects(
                Bucket=self.container,
                Delete={"Objects": [{"Key": n} for n in chunk], "Quiet": True})
            errors = out.get("Errors", [])
            if errors:
                raise BackendError(f"s3: could not delete {len(errors)} objects: "
                                   f"{errors[0].get('Message')}", backend=self.name)
            removed += len(chunk)
        return removed

    def _names(self, prefix: str) -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.container, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", ()):
                yield obj["Key"]


    @classmethod
    def from_params(cls, **params: Any) -> S3Store:
        P.check_names(params, PARAMS, "s3")
        bucket = P.require(params, "s3_bucket_name", "s3")
        if not isinstance(bucket, str):
            raise ConfigError("s3_bucket_name must be a string", parameter="s3_bucket_name")
        endpoint = P.opt_str(params, "s3_endpoint_url")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError("s3_endpoint_url must be an http(s) URL",
                              parameter="s3_endpoint_url")
        verify = params.get("s3_verify")
        if verify is not None and not isinstance(verify, (bool, str)):
            raise ConfigError("s3_verify must be true/false or a CA bundle path",
                              parameter="s3_verify")
        config = params.get("s3_config")
        if config is not None and not isinstance(config, (dict, botocore.config.Config)):
            raise ConfigError("s3_config must be a dict or a botocore Config",
                              parameter="s3_config")
        if isinstance(config, dict):
            try:
                config = botocore.config.Config(**config)
            except TypeError as exc:
                raise ConfigError(f"s3_config: {exc}", parameter="s3_config") from exc
        use_ssl = P.opt_bool(params, "s3_use_ssl")
        return cls(
            bucket,
            prefix=P.opt_str(params, "s3_path") or "",
            region_name=P.opt_str(params, "s3_region_name"),
            endpoint_url=endpoint,
            aws_access_key_id=P.opt_str(params, "s3_aws_access_key_id"),
            aws_secret_access_key=P.opt_str(params, "s3_aws_secret_access_key"),
            aws_session_token=P.opt_str(params, "s3_aws_session_token"),
            use_ssl=True if use_ssl is None else use_ssl,
            verify=verify,
            api_version=P.opt_str(params, "s3_api_version"),
            config=config,
            timeout=P.opt_float(params, "s3_timeout") or 2.0,
            create_bucket=bool(P.opt_bool(params, "s3_create_bucket")),
            default_ttl=P.opt_float(params, "ttl"),
        )
