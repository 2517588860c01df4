"""s3:// against a real S3 server (MinIO): objects, prefixes, config trees, the cache, every failure
the issue lists, and the output upload order."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from kslim_api.contract import EXIT_INTERNAL, EXIT_USER
from kslim_runner.errors import KslimError, UserError
from kslim_runner.storage.publish import output_files, publish
from kslim_runner.storage.s3 import S3Settings
from kslim_runner.storage.s3_fetch import S3Fetcher
from support.s3server import S3Server

pytestmark = pytest.mark.s3
BUCKET = "unit"


@pytest.fixture
def s3(s3_env: S3Server) -> S3Server:
    s3_env.make_bucket(BUCKET)
    c = s3_env.client()
    for key, body in {
        "w/model.pdparams": b"weights",
        "imgs/a.jpg": b"a",
        "imgs/sub/b.jpg": b"b",
        "configs/yolov3/yolov3.yml": b"_BASE_: ['../datasets/coco.yml', '_base_/opt.yml']\n"
        b"architecture: YOLOv3\n",
        "configs/yolov3/_base_/opt.yml": b"epoch: 3\n",
        "configs/datasets/coco.yml": b"num_classes: 80\n",
        "configs/unrelated.yml": b"x: 1\n",
    }.items():
        c.put_object(BUCKET, key, io.BytesIO(body), len(body))
    return s3_env


def fetcher(s3: S3Server, **kw: object) -> S3Fetcher:
    return S3Fetcher(S3Settings(endpoint=kw.pop("endpoint", s3.endpoint), path_style=True, **kw))  # type: ignore[arg-type]


def test_an_object_is_fetched_once(s3: S3Server) -> None:
    f = fetcher(s3)
    path = f.fetch(f"s3://{BUCKET}/w/model.pdparams", "model.weights")
    assert path.read_bytes() == b"weights"
    stamp = path.stat().st_mtime_ns
    again = fetcher(s3).fetch(f"s3://{BUCKET}/w/model.pdparams", "model.weights")  # a retried pod
    assert again == path and path.stat().st_mtime_ns == stamp


def test_a_changed_object_is_fetched_again(s3: S3Server) -> None:
    path = fetcher(s3).fetch(f"s3://{BUCKET}/imgs/a.jpg", "x")
    s3.client().put_object(BUCKET, "imgs/a.jpg", io.BytesIO(b"A2"), 2)
    assert fetcher(s3).fetch(f"s3://{BUCKET}/imgs/a.jpg", "x") == path and path.read_bytes() == b"A2"


@pytest.mark.parametrize("uri", [f"s3://{BUCKET}/imgs", f"s3://{BUCKET}/imgs/"])
def test_a_prefix_is_a_folder(s3: S3Server, uri: str) -> None:
    folder = fetcher(s3).fetch(uri, "dataset.train.images")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "a.jpg",
        "sub/b.jpg",
    ]


def test_a_config_brings_its_base_tree(s3: S3Server) -> None:
    from kslim_runner.zoo.config import read_tree

    path = fetcher(s3).fetch_config_tree(f"s3://{BUCKET}/configs/yolov3/yolov3.yml", "model.config")
    assert read_tree(path) == {"num_classes": 80, "epoch": 3, "architecture": "YOLOv3"}
    assert not (path.parents[1] / "unrelated.yml").exists()  # only what the config includes


def test_a_checksum_mismatch_leaves_nothing(s3: S3Server, download_cache: Path) -> None:
    with pytest.raises(UserError) as e:
        fetcher(s3).fetch(f"s3://{BUCKET}/w/model.pdparams", "model.weights", sha256="0" * 64)
    assert e.value.reason == "ChecksumMismatch"
    assert not [p for p in download_cache.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("uri", "reason", "needle"),
    [
        ("s3://no-such-bucket/w/model.pdparams", "BucketNotFound", "bucket no-such-bucket does not exist"),
        (f"s3://{BUCKET}/w/missing.pdparams", "DataNotFound", f"s3://{BUCKET}/w/missing.pdparams"),
    ],
)
def test_missing_bucket_or_key_is_a_user_error(s3: S3Server, uri: str, reason: str, needle: str) -> None:
    with pytest.raises(UserError) as e:
        fetcher(s3).fetch(uri, "model.weights")
    assert e.value.reason == reason and e.value.exit_code == EXIT_USER and needle in str(e.value)


def test_wrong_credentials_name_the_bucket_not_the_key(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(UserError) as e:
        fetcher(s3).fetch(f"s3://{BUCKET}/w/model.pdparams", "model.weights")
    msg = str(e.value)
    assert e.value.reason == "StorageAccessDenied" and e.value.exit_code == EXIT_USER
    assert f"bucket {BUCKET}" in msg and "model.pdparams" not in msg and "credentialsSecret" in msg


def test_an_endpoint_that_does_not_answer_is_retried(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.s3server import free_port

    with pytest.raises(KslimError) as e:
        fetcher(s3, endpoint=f"http://127.0.0.1:{free_port()}").fetch(f"s3://{BUCKET}/w/model.pdparams", "w")
    assert e.value.reason == "StorageUnavailable" and e.value.exit_code == EXIT_INTERNAL
    assert "does not answer" in str(e.value)


def test_output_is_uploaded_with_the_report_last(s3: S3Server, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for rel in [
        "report.json",
        "report.md",
        "pareto.png",
        "models/baseline/model.pdmodel",
        "state.json",
        "stages/baseline/model.pdparams",
        "stages/baseline/checkpoint/c.pdparams",
        "data/train/x.jpg",
        ".kslim-write-probe",
    ]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(rel)
    assert [p.relative_to(out).as_posix() for p in output_files(out)] == [
        "models/baseline/model.pdmodel",
        "pareto.png",
        "stages/baseline/model.pdparams",
        "state.json",
        "report.md",
        "report.json",
    ]
    s3.client().put_object(BUCKET, "jobs/j/report.json", io.BytesIO(b"old"), 3)
    keys = publish(
        out, f"s3://{BUCKET}/jobs/j", S3Settings(endpoint=s3.endpoint, path_style=True), log=lambda _: None
    )
    assert keys[-1] == "jobs/j/report.json"
    listed = sorted(o.object_name for o in s3.client().list_objects(BUCKET, "jobs/j/", recursive=True))
    assert listed == sorted(keys)
    assert s3.client().get_object(BUCKET, "jobs/j/report.json").read() == b"report.json"
