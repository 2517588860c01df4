"""End to end with object storage: a CompressionJob on the dev-cluster stack reads its weights and
data from a bucket of a real S3 server (MinIO) and writes its output there, with credentials from a
Secret the spec names; a second job whose Secret holds a wrong key ends Failed/StorageAccessDenied
naming the bucket, not the key, without a retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_stack import Stack
from support.s3job import IN_BUCKET, OUT_BUCKET, s3_job, tiny_weights
from support.s3server import S3Server, S3ServerMissing
from support.tinydata import tiny_coco
from test_quickstart import condition, kubectl_wait

pytestmark = [pytest.mark.cluster, pytest.mark.s3, pytest.mark.timeout(600)]
JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, str]]:
    """The server with the tiny data and weights uploaded; yields it and the weights' sha256."""
    try:
        server = S3Server()
    except S3ServerMissing as error:
        raise pytest.fail.Exception(f"{error} (storage tests are never skipped)", pytrace=False) from None
    root = tmp_path_factory.mktemp("s3-e2e")
    tiny_coco(root / "data", 96, seed=1)
    sha = tiny_weights(root / "base.pdparams")
    with server:
        for bucket in (IN_BUCKET, OUT_BUCKET):
            server.make_bucket(bucket)
        server.upload_tree(root / "data", IN_BUCKET, "data")
        server.client().fput_object(IN_BUCKET, "models/base.pdparams", str(root / "base.pdparams"))
        yield server, sha


def _secret(stack: Stack, name: str, access: str, secret: str) -> None:
    stack.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret},
        }
    )


def _job(server: S3Server, sha: str, name: str, secret: str) -> dict[str, Any]:
    doc = s3_job(server.endpoint, sha, name=name)
    doc["spec"]["storage"]["s3"]["credentialsSecret"] = secret
    return doc


def test_a_job_reads_and_writes_a_bucket_with_credentials_from_a_secret(
    stack: Stack, s3: tuple[S3Server, str]
) -> None:
    server, sha = s3
    _secret(stack, "s3-creds", server.access_key, server.secret_key)
    stack.apply(_job(server, sha, "s3-job", "s3-creds"))
    cj = kubectl_wait(stack, "s3-job", "Succeeded", give_up_on="Failed", timeout=JOB_TIMEOUT)
    prefix = f"s3://{OUT_BUCKET}/jobs/s3-job/"
    artifacts = json.dumps(cj["status"].get("artifacts") or cj["status"])
    assert prefix + "report.json" in artifacts, artifacts
    keys = {o.object_name for o in server.client().list_objects(OUT_BUCKET, "jobs/s3-job/", recursive=True)}
    assert "jobs/s3-job/report.json" in keys and any(k.endswith(".pdmodel") for k in keys), keys
    # The credentials travel by reference only: nothing of the key is in the ConfigMap or the Job.
    for kind in ("configmap/s3-job-job", "job/s3-job"):
        text = stack.kubectl("get", kind, "-o", "json").stdout
        assert server.secret_key not in text, kind


def test_wrong_credentials_fail_with_storage_access_denied(stack: Stack, s3: tuple[S3Server, str]) -> None:
    server, sha = s3
    _secret(stack, "s3-wrong", server.access_key, "not-the-secret-key")
    stack.apply(_job(server, sha, "s3-denied", "s3-wrong"))
    cj = kubectl_wait(stack, "s3-denied", "Failed", give_up_on="Succeeded", timeout=JOB_TIMEOUT)
    failed = condition(cj, "Failed")
    assert failed is not None and failed["reason"] == "StorageAccessDenied", failed
    assert f"bucket {IN_BUCKET}" in failed["message"] and "base.pdparams" not in failed["message"], failed
    assert cj["status"]["attempts"] == 1  # a user error (exit 2) is not retried


def test_nothing_was_written_for_the_denied_job(s3: tuple[S3Server, str], tmp_path: Path) -> None:
    server, _ = s3
    assert not list(server.client().list_objects(OUT_BUCKET, "jobs/s3-denied/", recursive=True))
