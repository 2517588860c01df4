"""The chart grants exactly the API verbs the operator uses: no verb without a code path using it,
no call the chart does not allow.

What the code uses is read from the code itself: every Kubernetes client call of the operator
(`<verb>_namespaced_<kind>` in operator/kslim_operator), every resource Kopf watches or indexes
(its handler registry), the Events Kopf posts (`kopf.event`), and Kopf's own discovery watches.
"""

from __future__ import annotations

import re
from pathlib import Path

import kopf
import pytest
from test_chart import VALUE_SETS, render

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ROOT / "operator" / "kslim_operator"

Access = tuple[str, str, str]  # (apiGroup, resource, verb)

#: Client method verb -> RBAC verb.
VERBS = {
    "create": "create",
    "read": "get",
    "list": "list",
    "patch": "patch",
    "replace": "update",
    "delete": "delete",
    "get": "get",
}
#: Client method object -> (apiGroup, resource). A new kind of call must be added here (and granted).
KINDS = {
    "config_map": ("", "configmaps"),
    "job": ("batch", "jobs"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
    "persistent_volume_claim": ("", "persistentvolumeclaims"),
    "lease": ("coordination.k8s.io", "leases"),
    "secret": ("", "secrets"),
    "custom_object": ("kslim.dev", "compressionjobs"),
    "custom_object_status": ("kslim.dev", "compressionjobs/status"),
}
#: Custom-object calls whose first argument names another group than ours.
CUSTOM_GROUPS = {
    "PADDLEJOB_GROUP": ("kubeflow.org", "paddlejobs"),
    "KUEUE_GROUP": ("kueue.x-k8s.io", "workloads"),
}
CALL = re.compile(
    r"\.(create|read|list|patch|replace|delete|get)_namespaced_([a-z_]+?)(?:_with_http_info)?\b"
    r"(?:,\s*(\w+))?"
)
#: What the chart grants only with multiNode.enabled: the PaddleJob engine and its token Secrets.
MULTI_NODE_ACCESS = {
    ("kubeflow.org", "paddlejobs", "get"),
    ("kubeflow.org", "paddlejobs", "create"),
    ("kubeflow.org", "paddlejobs", "patch"),
    ("kubeflow.org", "paddlejobs", "delete"),
    ("", "secrets", "create"),
}
#: Kopf's resource observer lists and watches CRDs; its namespace observer lists and watches
#: namespaces when only some namespaces are watched (kopf/_core/reactor/observation.py).
KOPF_DISCOVERY = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def client_calls() -> set[Access]:
    used: set[Access] = set()
    for path in sorted(OPERATOR.rglob("*.py")):
        for verb, kind, first_arg in CALL.findall(path.read_text()):
            assert kind in KINDS, f"{path.name}: {verb}_namespaced_{kind}: add {kind!r} to KINDS"
            group_resource = CUSTOM_GROUPS.get(first_arg) if kind == "custom_object" else None
            used.add((*(group_resource or KINDS[kind]), VERBS[verb]))
    return used


def kopf_access() -> set[Access]:
    import kslim_operator.handlers  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    used: set[Access] = set(KOPF_DISCOVERY)
    watching = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    patching = [*registry._changing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    for handler, verbs in [(h, ("list", "watch")) for h in watching] + [
        (h, ("list", "watch", "patch")) for h in patching
    ]:
        selector = handler.selector
        assert selector is not None
        resource = selector.plural or selector.any_name
        assert resource, selector
        used |= {(selector.group or "", resource, verb) for verb in verbs}
    if any(
        re.search(r"\bkopf\.(event|info|warn|exception)\(", p.read_text()) for p in OPERATOR.rglob("*.py")
    ):
        used.add(("", "events", "create"))
    return used


def used_by_the_operator() -> set[Access]:
    return client_calls() | kopf_access()


def granted(values: list[str]) -> set[Access]:
    out: set[Access] = set()
    for doc in render(*values):
        if doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                out |= {
                    (g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
                }
    return out


def test_the_scan_sees_the_operator_calls() -> None:
    used = used_by_the_operator()
    assert ("batch", "jobs", "create") in used and ("kslim.dev", "compressionjobs/status", "patch") in used
    assert ("kslim.dev", "compressionjobs", "watch") in used and ("", "pods", "list") in used
    assert ("coordination.k8s.io", "leases", "update") in used


MULTI_NODE = ["--set", "multiNode.enabled=true"]


def test_the_scan_sees_the_paddlejob_calls() -> None:
    assert used_by_the_operator() >= MULTI_NODE_ACCESS


@pytest.mark.parametrize("multi_node", [False, True], ids=["single-node", "multi-node"])
@pytest.mark.parametrize("name", ["defaults", "namespaced"])
def test_every_granted_verb_is_used(name: str, multi_node: bool) -> None:
    unused = granted(VALUE_SETS[name] + MULTI_NODE * multi_node) - used_by_the_operator()
    assert not unused, f"the chart grants verbs no code path uses: {sorted(unused)}"


@pytest.mark.parametrize("multi_node", [False, True], ids=["single-node", "multi-node"])
@pytest.mark.parametrize("name", ["defaults", "namespaced"])
def test_every_used_verb_is_granted(name: str, multi_node: bool) -> None:
    """Without multiNode.enabled, exactly the multi-node access is missing (such jobs then fail with
    EngineNotEnabled); with it, nothing is."""
    missing = used_by_the_operator() - granted(VALUE_SETS[name] + MULTI_NODE * multi_node)
    expected = set() if multi_node else MULTI_NODE_ACCESS
    assert missing == expected, (
        f"the operator uses verbs the chart does not grant: {sorted(missing - expected)}"
    )
