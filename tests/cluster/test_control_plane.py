"""Smoke tests: the test control plane is a real, working Kubernetes API with its controllers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from kubernetes import client
from support.controlplane import ControlPlane
from support.kube import apply_crds, exists, wait_for

pytestmark = pytest.mark.cluster

SMOKE_GROUP = "smoke.kslim.dev"
SMOKE_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{SMOKE_GROUP}
spec:
  group: {SMOKE_GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {{type: integer, minimum: 1}}
"""


def _meta(name: str, **fields: object) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, **fields)


def test_version_is_the_built_one(kube_api: client.ApiClient) -> None:
    expected = os.environ.get("K8S_VERSION", "v1.37.2")  # hack/testbin.sh's default
    assert client.VersionApi(kube_api).get_code().git_version == expected


def test_kubectl_talks_to_the_server(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == versions["clientVersion"]["gitVersion"]


def test_namespace_is_created_and_deleted(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = "smoke-namespace"
    core.create_namespace(client.V1Namespace(metadata=_meta(name)))
    assert core.read_namespace(name).status.phase == "Active"

    core.delete_namespace(name)

    # Finishing the deletion is the namespace controller's job.
    wait_for(lambda: not exists(lambda: core.read_namespace(name)), f"namespace {name} to be gone")


def _widget(name: str, size: int) -> dict[str, object]:
    return {
        "apiVersion": f"{SMOKE_GROUP}/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


@pytest.fixture(scope="module")
def smoke_crd(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The throwaway Widget CRD, installed the way `crds_installed` installs the repo's CRDs.

    Once per module: a deleted CRD stays Terminating for a while.
    """
    directory = tmp_path_factory.mktemp("crds")
    (directory / "widgets.yaml").write_text(SMOKE_CRD)
    name = f"widgets.{SMOKE_GROUP}"

    assert apply_crds(control_plane, directory) == [f"customresourcedefinition.apiextensions.k8s.io/{name}"]
    yield name
    control_plane.kubectl("delete", "crd", name, "--wait=false")


def test_repo_crds_are_established(kube_api: client.ApiClient, crds_installed: list[str]) -> None:
    extensions = client.ApiextensionsV1Api(kube_api)
    for crd in crds_installed:  # none until crds/ has files
        conditions = extensions.read_custom_resource_definition(crd.split("/", 1)[1]).status.conditions
        assert any(c.type == "Established" and c.status == "True" for c in conditions)


def test_custom_resource_roundtrip(kube_api: client.ApiClient, namespace: str, smoke_crd: str) -> None:
    objects = client.CustomObjectsApi(kube_api)
    objects.create_namespaced_custom_object(SMOKE_GROUP, "v1alpha1", namespace, "widgets", _widget("w1", 3))

    read = objects.get_namespaced_custom_object(SMOKE_GROUP, "v1alpha1", namespace, "widgets", "w1")

    assert read["spec"] == {"size": 3}
    assert read["metadata"]["uid"]


def test_custom_resource_schema_is_enforced(
    kube_api: client.ApiClient, namespace: str, smoke_crd: str
) -> None:
    too_small = _widget("w0", 0)
    with pytest.raises(client.ApiException) as raised:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            SMOKE_GROUP, "v1alpha1", namespace, "widgets", too_small
        )
    assert raised.value.status == 422


def _job(name: str, ttl_seconds: int | None = None) -> client.V1Job:
    container = client.V1Container(name="main", image="busybox", command=["true"])
    template = client.V1PodTemplateSpec(spec=client.V1PodSpec(containers=[container], restart_policy="Never"))
    spec = client.V1JobSpec(template=template, backoff_limit=0, ttl_seconds_after_finished=ttl_seconds)
    return client.V1Job(metadata=_meta(name), spec=spec)


def _job_pods(core: client.CoreV1Api, namespace: str, job: str) -> list[client.V1Pod]:
    pods: list[client.V1Pod] = core.list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}"
    ).items
    return pods


def test_job_controller_creates_the_pod(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    client.BatchV1Api(kube_api).create_namespaced_job(namespace, _job("smoke"))

    pods = wait_for(lambda: _job_pods(core, namespace, "smoke"), "the Job's pod")

    assert len(pods) == 1
    assert pods[0].metadata.owner_references[0].kind == "Job"
    assert pods[0].status.phase == "Pending"  # no scheduler, no kubelet


def test_finished_job_is_removed_by_ttl_controller(kube_api: client.ApiClient, namespace: str) -> None:
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    batch.create_namespaced_job(namespace, _job("ttl", ttl_seconds=0))
    pod = wait_for(lambda: _job_pods(core, namespace, "ttl"), "the Job's pod")[0]

    # Play kubelet: report the pod as succeeded; the job controller completes the Job.
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"phase": "Succeeded"}})

    wait_for(
        lambda: not exists(lambda: batch.read_namespaced_job("ttl", namespace)), "TTL deletion of the Job"
    )


def test_owned_object_is_garbage_collected(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=_meta("owner")))
    uid = owner.metadata.uid
    reference = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=uid)
    owned = client.V1ConfigMap(metadata=_meta("owned", owner_references=[reference]))
    core.create_namespaced_config_map(namespace, owned)

    core.delete_namespaced_config_map("owner", namespace)

    wait_for(
        lambda: not exists(lambda: core.read_namespaced_config_map("owned", namespace)),
        "the owned ConfigMap to be garbage-collected",
        timeout=60,
    )
