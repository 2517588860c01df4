"""Upload a finished job's output folder to its s3:// location, so that a reader never takes a
half-written upload for a result.

Order: the previous report.json/report.md at the location are deleted first (a re-run must not leave
an old report describing new models), then models, plot, stage outputs the report names (weights,
detections) and the pipeline state, then report.md, and report.json last: its presence means the
upload is complete. Training checkpoints and generated synthetic data stay local. Each object is
atomic in S3 (a PUT, or a multipart upload completed at once).
"""

from __future__ import annotations

from pathlib import Path

from kslim_runner.storage.s3 import S3_FAILURES, S3Settings, make_client, parse_s3_uri, storage_error

LOCAL_ONLY_TOP = ("data",)  # synthetic data the job generated
LOCAL_ONLY_PART = "checkpoint"  # stages/<stage>/checkpoint/: resume state of a training, large
LAST = ("report.md", "report.json")  # report.json is the completion marker


def output_files(out: Path) -> list[Path]:
    """What is uploaded, in upload order."""
    files = [
        p
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and p.relative_to(out).parts[0] not in LOCAL_ONLY_TOP
        and LOCAL_ONLY_PART not in p.relative_to(out).parts
        and not any(part.startswith(".") for part in p.relative_to(out).parts)
    ]
    rest = [p for p in files if p.relative_to(out).as_posix() not in LAST]
    return rest + [out / name for name in LAST if (out / name).is_file()]


def publish(out: Path, uri: str, settings: S3Settings, log: object = print) -> list[str]:
    """Upload out to uri (s3://bucket/prefix); returns the keys in upload order."""
    bucket, prefix = parse_s3_uri(uri.rstrip("/"))
    prefix = f"{prefix}/" if prefix else ""
    client = make_client(settings)
    what = "spec.output.uri"
    keys: list[str] = []
    try:
        for name in LAST[::-1]:
            client.remove_object(bucket, prefix + name)  # S3 answers 204 for a missing key too
        for path in output_files(out):
            key = prefix + path.relative_to(out).as_posix()
            client.fput_object(bucket, key, str(path))
            keys.append(key)
    except S3_FAILURES as e:
        raise storage_error(e, settings, bucket, prefix, what) from e
    log(f"kslim: uploaded {len(keys)} files to {uri.rstrip('/')}/ (report.json last)")  # type: ignore[operator]
    return keys
