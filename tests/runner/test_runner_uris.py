from __future__ import annotations

from pathlib import Path

import pytest
from kslim_runner.errors import UserError
from kslim_runner.uris import resolve_uri


def test_pvc_maps_under_the_pvc_root(monkeypatch) -> None:
    monkeypatch.setenv("KSLIM_PVC_ROOT", "/data/claims")
    assert resolve_uri("pvc://models/yolo/w.pdparams", Path("/jobs")) == Path(
        "/data/claims/models/yolo/w.pdparams"
    )
    assert resolve_uri("pvc://models", Path("/jobs")) == Path("/data/claims/models")


def test_pvc_root_defaults_to_the_operator_mount(monkeypatch) -> None:
    monkeypatch.delenv("KSLIM_PVC_ROOT", raising=False)
    assert resolve_uri("pvc://data/train", Path("/x")) == Path("/mnt/pvc/data/train")


def test_file_and_relative_paths() -> None:
    assert resolve_uri("file:///abs/a.json", Path("/jobs")) == Path("/abs/a.json")
    assert resolve_uri("file://rel/a.json", Path("/jobs")) == Path("/jobs/rel/a.json")
    assert resolve_uri("data/a.json", Path("/jobs")) == Path("/jobs/data/a.json")


def test_unsupported_schemes_are_user_errors() -> None:
    with pytest.raises(UserError, match="s3:// URIs are not supported"):
        resolve_uri("s3://bucket/key", Path("/jobs"), what="dataset.train.images")


def test_output_on_an_unmounted_claim_is_a_user_error(make_job, tmp_path: Path, monkeypatch, capsys) -> None:
    from kslim_runner.run import run_command

    monkeypatch.setenv("KSLIM_PVC_ROOT", str(tmp_path / "claims"))
    job = make_job(output={"uri": "pvc://artifacts/jobs"})
    assert run_command(str(job)) == 2
    err = capsys.readouterr().err
    assert "claim folder" in err and "KSLIM_PVC_ROOT" in err


def test_output_on_a_mounted_claim_goes_under_the_job_name(make_job, tmp_path: Path, monkeypatch) -> None:
    from kslim_api import load_job
    from kslim_runner.run import output_location

    monkeypatch.setenv("KSLIM_PVC_ROOT", str(tmp_path / "claims"))
    (tmp_path / "claims" / "artifacts").mkdir(parents=True)
    job = load_job(make_job(output={"uri": "pvc://artifacts/jobs"}))
    out, uri = output_location(job, tmp_path, None)
    assert out == tmp_path / "claims" / "artifacts" / "jobs" / "tiny" and uri is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    out, uri = output_location(job, tmp_path, "/output")
    assert out == Path("/output") and uri == "pvc://artifacts/jobs/tiny"


def test_paths_never_leave_their_claim(monkeypatch, tmp_path: Path) -> None:
    """Defence in depth behind the schema: a job file that was never validated cannot step out."""
    monkeypatch.setenv("KSLIM_PVC_ROOT", str(tmp_path))
    for uri in (
        "pvc://coco/../../../etc/x.json",
        "pvc://coco/a/..",
        "file://../../etc/passwd",
        "data/../../x",
    ):
        with pytest.raises(UserError, match=r"'\.\.' path segments"):
            resolve_uri(uri, tmp_path / "jobs", what="dataset.val.annotations")
    assert resolve_uri("pvc://coco/v1..2/x.json", tmp_path) == tmp_path / "coco" / "v1..2" / "x.json"


def test_failure_messages_hide_passwords(monkeypatch, tmp_path: Path, capsys) -> None:
    from kslim_runner.run import _fail

    message_file = tmp_path / "termination-log"
    monkeypatch.setenv("KSLIM_TERMINATION_MESSAGE_PATH", str(message_file))
    assert _fail("cannot read https://user:s3cret@host/w.pdparams", "InvalidInput", "prepare", 2) == 2
    assert "s3cret" not in capsys.readouterr().err
    assert "s3cret" not in message_file.read_text() and "https://***@host" in message_file.read_text()
