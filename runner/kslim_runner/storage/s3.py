"""The S3 client a job uses, and what S3's answers mean for the user.

Settings come from spec.storage.s3; credentials from the environment (the operator fills
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the Secret the spec names), else
the pod's workload identity (IRSA web identity, container or instance metadata), else anonymous.

Errors, decided once here:
- missing bucket or key, refused credentials: the spec or the Secret is wrong, exit 2 (a retry gets
  the same answer). Access errors name the bucket, never the key.
- endpoint not answering, 5xx, throttling: exit 1, retried by the Job (outages pass).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.credentials import EnvAWSProvider, IamAwsProvider, Provider
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from kslim_runner.errors import KslimError, StorageUnavailable, UserError

AWS_HOST = "s3.amazonaws.com"
#: Codes S3-compatible stores answer for credentials or policies that do not let the runner in.
DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "AccountProblem",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "InvalidSecurity",
}
#: Identity sources a pod may have; without one, IamAwsProvider would wait on instance metadata.
IDENTITY_ENV = (
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    insecure_skip_tls_verify: bool = False

    @classmethod
    def from_spec(cls, spec: Any) -> S3Settings:
        s3 = spec.storage.s3
        return cls(s3.endpoint, s3.region, s3.path_style, s3.insecure_skip_tls_verify)

    @property
    def where(self) -> str:
        return self.endpoint or f"https://{AWS_HOST}"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); the key may be empty (the whole bucket) or end with '/'."""
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _credentials() -> Provider | None:
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return EnvAWSProvider()
    if any(os.environ.get(v) for v in IDENTITY_ENV) or os.environ.get("KUBERNETES_SERVICE_HOST"):
        return IamAwsProvider()
    return None  # anonymous: public buckets


#: Seconds a GET may wait for the next bytes (a large object streams for longer, as long as bytes come).
READ_TIMEOUT = 120


def connect_timeout() -> float:
    return float(os.environ.get("KSLIM_S3_CONNECT_TIMEOUT", "10"))


def make_client(settings: S3Settings, *, parallel: int = 16) -> Minio:
    parts = urlsplit(settings.where)
    # Bounded waits: a store that does not answer fails the attempt in about half a minute, and the
    # Job retries it; 5xx answers are retried here first.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout(), read=READ_TIMEOUT),
        maxsize=parallel,
        cert_reqs="CERT_NONE" if settings.insecure_skip_tls_verify else "CERT_REQUIRED",
        ca_certs=os.environ.get("AWS_CA_BUNDLE") or None,  # an endpoint signed by a private CA
        retries=urllib3.Retry(total=3, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]),
    )
    if settings.insecure_skip_tls_verify:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    client = Minio(
        parts.netloc,
        secure=parts.scheme == "https",
        region=settings.region,
        http_client=http,
        credentials=_credentials(),
        cert_check=not settings.insecure_skip_tls_verify,
    )
    if settings.path_style:
        client.disable_virtual_style_endpoint()
    elif settings.endpoint is not None:
        client.enable_virtual_style_endpoint()
    return client


def storage_error(exc: BaseException, settings: S3Settings, bucket: str, key: str, what: str) -> KslimError:
    """The user-facing failure for an exception of an S3 call on bucket/key."""
    uri = f"s3://{bucket}/{key}"
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code in DENIED:
            return UserError(
                f"{what}: access to s3 bucket {bucket} at {settings.where} denied ({code}): check the "
                "credentials in spec.storage.s3.credentialsSecret (or the pod's identity) and the bucket's "
                "policy",
                reason="StorageAccessDenied",
            )
        if code == "NoSuchBucket":
            return UserError(
                f"{what}: s3 bucket {bucket} does not exist at {settings.where}: fix the bucket name or "
                "spec.storage.s3.endpoint/region",
                reason="BucketNotFound",
            )
        if code in ("NoSuchKey", "ResourceNotFound"):
            return UserError(f"{what}: {uri} does not exist: fix the key or upload it", reason="DataNotFound")
        if code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"):
            return StorageUnavailable(f"{what}: s3 at {settings.where} answered {code}; retried")
        return UserError(f"{what}: s3 refused {uri}: {code}: {exc.message}", reason="StorageError")
    if isinstance(exc, ServerError | InvalidResponseError | MinioException):
        return StorageUnavailable(f"{what}: s3 at {settings.where} failed ({exc}); retried")
    detail = " ".join(str(exc).split())[:200]
    return StorageUnavailable(
        f"{what}: s3 endpoint {settings.where} does not answer ({type(exc).__name__}: {detail}): check "
        "spec.storage.s3.endpoint and the network; the job is retried"
    )


#: Exceptions of a call to S3 that storage_error maps (anything else is a bug, reported as such).
S3_FAILURES = (MinioException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
