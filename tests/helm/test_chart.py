"""The Helm chart: lint, render for several value sets, reject typos, least privilege, no drift,
and install into the real control plane."""

from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.controlplane import ControlPlane, find_bin_dir

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "kslim"

VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "namespaced": [
        "--set", "operator.watchNamespaces={team-a,team-b}",
        "--set", "operator.maxConcurrentJobs=5",
    ],
    "everything-on": [
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.grafanaDashboard.enabled=true",
        "--set", "operator.replicas=2",
        "--set-string", "image.tag=0.1.0-rc1",
    ],
    "no-rbac-no-service": ["--set", "rbac.create=false", "--set", "metrics.service.enabled=false",
                           "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing"],
}  # fmt: skip


def helm(*args: str, check: bool = True, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(find_bin_dir() / "helm"), *args]
    if kubeconfig is not None:
        command.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def render(*values: str) -> list[dict[str, Any]]:
    out = helm("template", "kslim", str(CHART), "--namespace", "kslim-system", *values).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_lint_strict() -> None:
    helm("lint", "--strict", str(CHART))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_renders(name: str) -> None:
    docs = render(*VALUE_SETS[name])
    kinds = {d["kind"] for d in docs}
    assert "Deployment" in kinds
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kslim", doc["metadata"]["name"]


def test_misspelled_value_fails_naming_the_key() -> None:
    result = helm("template", "kslim", str(CHART), "--set", "operator.maxConcurentJobs=3", check=False)
    assert result.returncode != 0
    assert "maxConcurentJobs" in result.stderr


def test_rbac_is_least_privilege() -> None:
    for name, values in VALUE_SETS.items():
        for doc in render(*values):
            if doc["kind"] not in ("Role", "ClusterRole"):
                continue
            for rule in doc["rules"]:
                for key in ("verbs", "resources", "apiGroups"):
                    assert "*" not in rule.get(key, []), (
                        f"{name}: wildcard {key} in {doc['metadata']['name']}"
                    )
                assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]


def test_namespaced_watch_uses_roles_only() -> None:
    docs = render(*VALUE_SETS["namespaced"])
    cluster_roles = [d for d in docs if d["kind"] == "ClusterRole"]
    # Only the discovery role (CRDs, namespaces: read) is cluster-wide.
    assert [d["metadata"]["name"] for d in cluster_roles] == ["kslim-discovery"]
    assert {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"} >= {"team-a", "team-b"}
    env = {e["name"]: e.get("value") for e in _operator_container(docs)["env"]}
    assert env["KSLIM_OPERATOR_NAMESPACES"] == "team-a,team-b"
    assert env["KSLIM_OPERATOR_MAX_CONCURRENT_JOBS"] == "5"


def _operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def test_operator_pod_is_restricted() -> None:
    docs = render()
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = _operator_container(docs)["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_every_operator_setting_the_chart_sets_exists() -> None:
    from kslim_operator.settings import ENV_PREFIX, Settings

    env = {e["name"] for e in _operator_container(render())["env"] if e["name"].startswith(ENV_PREFIX)}
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert env <= known, env - known


def test_chart_crds_match_top_level_crds() -> None:
    top = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert top, "crds/ is empty"
    assert top == chart, "run `make crds`"
    _, mismatch, errors = filecmp.cmpfiles(ROOT / "crds", CHART / "crds", top, shallow=False)
    assert not mismatch and not errors, (
        f"helm/kslim/crds differs from crds/ ({mismatch or errors}): run `make crds`"
    )


def test_chart_readme_is_generated_from_values() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "hack" / "chart_readme.py"), "--check"], check=False)
    assert result.returncode == 0, "helm/kslim/README.md is stale: run `python hack/chart_readme.py`"


@pytest.mark.cluster
def test_helm_install_on_the_control_plane(control_plane: ControlPlane, namespace: str) -> None:
    # The server validates every rendered object (server-side dry run), then a real install.
    # ServiceMonitor/PrometheusRule need the Prometheus Operator's CRDs, which this cluster lacks.
    values = ["--set", "metrics.grafanaDashboard.enabled=true", "--set", "operator.replicas=2"]
    manifest = helm("template", "kslim", str(CHART), "--namespace", namespace, *values).stdout
    dry = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest, check=False
    )
    assert dry.returncode == 0, dry.stderr
    helm("install", "kslim", str(CHART), "--namespace", namespace, "--set", "operator.replicas=2",
         kubeconfig=control_plane.kubeconfig)  # fmt: skip
    deployment = control_plane.kubectl("get", "deployment", "kslim", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(deployment.stdout)["spec"]["replicas"] == 2
    crd = control_plane.kubectl("get", "crd", "compressionjobs.kslim.dev", "-o", "name")
    assert crd.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/compressionjobs.kslim.dev"
    for kind in ("serviceaccount", "service", "role"):
        assert control_plane.kubectl("get", kind, "-n", namespace, "-l", "app.kubernetes.io/instance=kslim",
                                     "-o", "name").stdout.strip(), kind  # fmt: skip
    helm("uninstall", "kslim", "--namespace", namespace, kubeconfig=control_plane.kubeconfig)


def _exposed_metric_names() -> set[str]:
    from kslim_operator.metrics import Metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in Metrics(source=list).registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def _rendered_rules() -> dict[str, Any]:
    docs = render("--set", "metrics.prometheusRule.enabled=true")
    return {"groups": next(d for d in docs if d["kind"] == "PrometheusRule")["spec"]["groups"]}


def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `make tools`"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rendered_rules()))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_and_dashboard_use_metrics_the_operator_exposes() -> None:
    exposed = _exposed_metric_names()
    used = set(re.findall(r"\bkslim_[a-z_]+", yaml.safe_dump(_rendered_rules())))
    used |= set(re.findall(r"\bkslim_[a-z_]+", (CHART / "dashboards" / "kslim.json").read_text()))
    assert used, "no kslim metric referenced"
    assert used <= exposed, f"not exposed by the operator: {sorted(used - exposed)}"
