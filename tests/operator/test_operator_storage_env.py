"""S3 credentials reach the runner as references to the Secret the spec names, never as values; the
job file in the ConfigMap carries only the Secret's name."""

from __future__ import annotations

from cj_samples import cj_body, with_spec
from kslim_operator.builders import build_configmap, build_job
from kslim_operator.request import parse_request
from kslim_operator.settings import Settings

STORAGE = {
    "s3": {"endpoint": "https://minio.storage.svc:9000", "pathStyle": True, "credentialsSecret": "s3-creds"}
}


def _env(body: dict, settings: Settings = Settings()) -> dict[str, dict]:
    job = build_job(parse_request(body), settings, suspend=False)
    return {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_credentials_come_from_the_named_secret() -> None:
    env = _env(cj_body(spec=with_spec(storage=STORAGE, output={"uri": "s3://artifacts/jobs"})))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "s3-creds" and ref["key"] == key and "value" not in env[key]
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert "KSLIM_ALLOW_PRIVATE_URLS" not in env


def test_no_secret_means_no_credential_variables_workload_identity_applies() -> None:
    env = _env(cj_body(spec=with_spec(output={"uri": "s3://artifacts/jobs"})))
    assert not [k for k in env if k.startswith("AWS_")]


def test_the_operator_setting_allows_internal_download_addresses() -> None:
    env = _env(cj_body(), Settings(allow_private_urls=True))
    assert env["KSLIM_ALLOW_PRIVATE_URLS"]["value"] == "1"


def test_the_configmap_names_the_secret_only() -> None:
    cm = build_configmap(parse_request(cj_body(spec=with_spec(storage=STORAGE))))
    text = cm["data"]["job.yaml"]
    assert '"credentialsSecret": "s3-creds"' in text and "AWS_SECRET" not in text
