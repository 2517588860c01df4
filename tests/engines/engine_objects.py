"""Plain-dict access to the objects of the engine tests (no pytest in here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

KUEUE = ("kueue.x-k8s.io", "v1beta2")
KUBEFLOW = ("kubeflow.org", "v1")
GPU = "nvidia.com/gpu"


@dataclass
class Objects:
    """Plain-dict access to a namespace's objects (what `kubectl get -o json` shows)."""

    api: client.ApiClient
    namespace: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create `obj` (a dict) in its namespace; returns the created object (after admission)."""
        group_version, kind = obj["apiVersion"], obj["kind"]
        if kind == "Job":
            batch = client.BatchV1Api(self.api)
            created = batch.create_namespaced_job(self.namespace, obj)  # type: ignore[arg-type]
            result: dict[str, Any] = self.api.sanitize_for_serialization(created)
            return result
        group, version = group_version.split("/")
        plural = f"{kind.lower()}s"
        namespace = obj["metadata"].get("namespace")
        made: object
        if namespace:
            made = self.custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
        else:
            made = self.custom.create_cluster_custom_object(group, version, plural, obj)
        assert isinstance(made, dict)
        return made

    def paddlejob(self, name: str) -> dict[str, Any]:
        found = self.custom.get_namespaced_custom_object(*KUBEFLOW, self.namespace, "paddlejobs", name)
        assert isinstance(found, dict)
        return found

    def job(self, name: str) -> dict[str, Any]:
        job = client.BatchV1Api(self.api).read_namespaced_job(name, self.namespace)
        result: dict[str, Any] = self.api.sanitize_for_serialization(job)
        return result

    def workloads(self) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(*KUEUE, self.namespace, "workloads")
        assert isinstance(listed, dict)
        items: list[dict[str, Any]] = listed["items"]
        return items

    def workload_of(self, kind: str, name: str) -> dict[str, Any] | None:
        """The Workload Kueue made for the `kind` object `name` (by owner reference)."""
        for workload in self.workloads():
            owners = workload["metadata"].get("ownerReferences", [])
            if any(o["kind"] == kind and o["name"] == name for o in owners):
                return workload
        return None

    def pods(self, selector: str) -> list[dict[str, Any]]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=selector).items
        result: list[dict[str, Any]] = [self.api.sanitize_for_serialization(p) for p in pods]
        return sorted(result, key=lambda p: p["metadata"]["name"])

    def services(self, selector: str) -> list[dict[str, Any]]:
        items = (
            client.CoreV1Api(self.api).list_namespaced_service(self.namespace, label_selector=selector).items
        )
        result: list[dict[str, Any]] = [self.api.sanitize_for_serialization(s) for s in items]
        return sorted(result, key=lambda s: s["metadata"]["name"])


@dataclass(frozen=True)
class GpuQueue:
    local_queue: str
    cluster_queue: str
    flavor: str
