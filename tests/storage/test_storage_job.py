"""`kslim run` of a tiny job whose weights and data are in a bucket of a real S3 server, with its
output written back there; and the same job with wrong credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kslim_api.contract import EXIT_OK, EXIT_USER
from kslim_runner.run import run_command
from support.s3job import IN_BUCKET, OUT_BUCKET, s3_job, tiny_weights
from support.s3server import S3Server
from support.tinydata import tiny_coco

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def bucket_data(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Data and weights uploaded once; returns the weights' sha256."""
    root = tmp_path_factory.mktemp("s3data")
    tiny_coco(root / "data", 96, seed=1)
    sha = tiny_weights(root / "base.pdparams")
    s3_server.make_bucket(IN_BUCKET)
    s3_server.make_bucket(OUT_BUCKET)
    s3_server.upload_tree(root / "data", IN_BUCKET, "data")
    s3_server.client().fput_object(IN_BUCKET, "models/base.pdparams", str(root / "base.pdparams"))
    return sha


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict) -> tuple[int, dict]:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    term = tmp_path / "termination-log"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(term))
    monkeypatch.chdir(tmp_path)  # the local staging folder ./output/<name>
    code = run_command(str(tmp_path / "job.yaml"))
    return code, json.loads(term.read_text())


def test_a_job_reads_its_bucket_and_writes_its_output_there(
    s3_env: S3Server, bucket_data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, term = _run(tmp_path, monkeypatch, s3_job(s3_env.endpoint, bucket_data))
    assert code == EXIT_OK, term
    c = s3_env.client()
    keys = {o.object_name for o in c.list_objects(OUT_BUCKET, "jobs/s3job/", recursive=True)}
    assert {"jobs/s3job/report.json", "jobs/s3job/report.md", "jobs/s3job/pareto.png"} <= keys
    assert any(k.startswith("jobs/s3job/models/") and k.endswith(".pdmodel") for k in keys)
    assert not any("/checkpoint/" in k for k in keys)
    report = json.loads(c.get_object(OUT_BUCKET, "jobs/s3job/report.json").read())
    arts = report["artifacts"]
    assert arts["report"] == f"s3://{OUT_BUCKET}/jobs/s3job/report.json" == term["artifacts"]["report"]
    assert arts["weights"] == f"s3://{IN_BUCKET}/models/base.pdparams"  # the source, not the cache
    named = [u for u in arts.values() if u.startswith(f"s3://{OUT_BUCKET}/")]
    assert all(u.removeprefix(f"s3://{OUT_BUCKET}/") in keys or u.endswith("/baseline") for u in named), named
    assert report["baseline"]["latencyMs"]["fp32"]["p50"] > 0


def test_wrong_credentials_fail_with_storage_access_denied(
    s3_env: S3Server, bucket_data: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    code, term = _run(tmp_path, monkeypatch, s3_job(s3_env.endpoint, bucket_data, name="denied"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USER and len(err) == 1, err
    assert term["reason"] == "StorageAccessDenied" and term["outcome"] == "Failed"
    assert f"bucket {IN_BUCKET}" in term["message"] and "base.pdparams" not in term["message"]
    assert not (tmp_path / "output" / "denied" / "report.json").exists()
