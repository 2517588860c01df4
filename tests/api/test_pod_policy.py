"""What a job author may put into the pod, and into a URI: the API server and `kslim validate` refuse
the same specs with the same message (the field-naming part runs for every BAD_SPEC elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_cases import POLICY_CASES, BadSpec, valid_job
from kslim_api import podpolicy
from kslim_api.contract import uris
from kslim_api.validate import InvalidJobError, load_job, validate_command
from support import kube
from support.controlplane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
WITH_MESSAGE = [(case, message) for case, message in POLICY_CASES if message]


def _validate_errors(doc: dict[str, Any]) -> str:
    with pytest.raises(InvalidJobError) as info:
        load_job(doc)
    return "\n".join(str(e) for e in info.value.errors)


@pytest.mark.parametrize(("case", "message"), WITH_MESSAGE, ids=lambda c: getattr(c, "id", ""))
def test_validate_prints_the_policy_message(case: BadSpec, message: str) -> None:
    assert message in _validate_errors(case.job())


@pytest.mark.cluster
def test_api_server_prints_the_same_messages(
    control_plane: ControlPlane, crds_installed: list[str], namespace: str
) -> None:
    # One server call per case, all in this test: a few seconds in all.
    for case, message in WITH_MESSAGE:
        doc = case.job()
        result = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False
        )
        assert result.returncode != 0, case.id
        offline = _validate_errors(doc)
        # The full sentence of the rule, word for word, on both sides.
        full = next(line.split(": ", 1)[1] for line in offline.splitlines() if message in line)
        assert full in result.stderr, f"{case.id}: {result.stderr}"


def test_messages_never_echo_a_password() -> None:
    doc = valid_job()
    doc["spec"]["model"]["weights"]["uri"] = "https://user:s3cret@host/w.pdparams"
    doc["spec"]["output"]["uri"] = "ftp://user:s3cret@host/out"  # a pattern error quotes the value
    text = _validate_errors(doc)
    assert "s3cret" not in text and "must not contain user-info" in text


def test_redact_hides_user_info_only() -> None:
    assert uris.redact("get https://u:p@h/x and s3://k@b/y") == "get https://***@h/x and s3://***@b/y"
    assert uris.redact("pvc://claim/a@b.json") == "pvc://claim/a@b.json"


def test_pure_rules() -> None:
    assert podpolicy.volume_ok({"name": "a", "emptyDir": {}})
    assert not podpolicy.volume_ok({"name": "a", "hostPath": {"path": "/"}})
    assert not podpolicy.env_name_ok("KSLIM_OUTPUT_URI") and podpolicy.env_name_ok("MKL_DEBUG_CPU_TYPE")
    assert podpolicy.mount_ok("/cache", "a/b") and not podpolicy.mount_ok("/tmp/", None)
    assert not podpolicy.mount_ok("/data", "../x")
    assert uris.has_dotdot("pvc://c/..") and not uris.has_dotdot("pvc://c/a..b")


def test_operator_env_names_are_all_owned() -> None:
    """Every variable the operator sets is one a user cannot override."""
    from kslim_operator.builders.pod import get_env
    from kslim_operator.request import parse_request

    body = valid_job()
    body["metadata"].update(namespace="ns", uid="u")
    ours = [e["name"] for e in get_env(parse_request(body))]
    assert ours and all(not podpolicy.env_name_ok(name) for name in ours)


def _sa_job(tmp_path: Path, account: str) -> str:
    doc = valid_job()
    doc["spec"]["template"] = {"serviceAccountName": account}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_validate_refuses_a_service_account_unless_allowed(tmp_path: Path, capsys: Any) -> None:
    job = _sa_job(tmp_path, "admin")
    assert validate_command(job) == 2
    err = capsys.readouterr().err
    assert f"spec.template.serviceAccountName: {podpolicy.service_account_message([])}" in err
    assert validate_command(job, allowed_service_accounts=["admin"]) == 0


def _render_policy(*values: str) -> list[dict[str, Any]]:
    import subprocess

    from support.controlplane import find_bin_dir

    out = subprocess.run(
        [str(find_bin_dir() / "helm"), "template", "kslim", str(ROOT / "helm" / "kslim"),
         "-s", "templates/admission-policy.yaml", *values],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_policy_message_is_the_operators() -> None:
    policy = _render_policy("--set", "operator.allowedServiceAccounts={b,a}")[0]
    message = policy["spec"]["validations"][0]["message"]
    assert message == f"spec.template.serviceAccountName: {podpolicy.service_account_message(['a', 'b'])}"


@pytest.mark.cluster
def test_api_server_refuses_a_service_account_the_chart_does_not_allow(
    control_plane: ControlPlane, crds_installed: list[str], namespace: str
) -> None:
    docs = _render_policy("--set", "operator.allowedServiceAccounts={runner-ok}")
    for doc in docs:  # cluster-scoped: a unique name per test run
        doc["metadata"]["name"] = f"{namespace}-sa"
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["policyName"] = f"{namespace}-sa"
            doc["spec"]["matchResources"] = {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            }
    manifest = "\n---\n".join(json.dumps(d) for d in docs)
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    try:
        bad, good = valid_job("sa-bad"), valid_job("sa-ok")
        bad["spec"]["template"] = {"serviceAccountName": "admin"}
        good["spec"]["template"] = {"serviceAccountName": "runner-ok"}

        def refused() -> str | None:  # a new policy takes effect within a second or two
            r = control_plane.kubectl(
                "apply",
                "--dry-run=server",
                "-n",
                namespace,
                "-f",
                "-",
                input=yaml.safe_dump(bad),
                check=False,
            )
            return r.stderr if r.returncode != 0 else None

        err = kube.wait_for(refused, "the admission policy to refuse", timeout=30, interval=0.5)
        assert podpolicy.service_account_message(["runner-ok"]) in err
        ok = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=yaml.safe_dump(good), check=False
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        control_plane.kubectl("delete", "-f", "-", "--wait=false", input=manifest, check=False)
