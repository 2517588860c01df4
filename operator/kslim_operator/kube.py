"""The operator's calls to the API server (besides Kopf's own watching, patching and events).

The official client is synchronous; every call runs on a few daemon threads so the event loop
stays free, the most urgent first (see `executor`): creating and starting Jobs, then status
patches, then log tails and claim checks. Errors are sorted into what a reconcile pass does with
them: `NotFound` and `Conflict` are answers; `TransientError` (429, 5xx, connection trouble)
means "retry later".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import urllib3
from kslim_api.contract import PADDLEJOB_GROUP, PADDLEJOB_PLURAL, PADDLEJOB_VERSION
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kslim_operator import names
from kslim_operator.executor import Priority, PriorityExecutor
from kslim_operator.names import KUEUE_GROUP, KUEUE_JOB_UID_LABEL, KUEUE_VERSION

T = TypeVar("T")

#: How long one answer on whether a claim exists serves every job of the namespace that mounts it.
CLAIM_CACHE_SECONDS = 5.0


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class TransientError(Exception):
    """The API server could not answer now (throttled, unavailable, connection lost)."""


class PermanentApiError(Exception):
    """The API server refused the request for good (invalid, forbidden by admission or quota)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _server_message(body: Any) -> str:
    """The `message` of the metav1.Status the server answered with, else the body's start."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        return str(json.loads(text)["message"])
    except (ValueError, KeyError, TypeError):
        return text[:500]


def classify(error: Exception) -> Exception:
    if isinstance(error, ApiException):
        if error.status == 404:
            return NotFound(str(error.reason))
        if error.status == 409:
            return Conflict(str(error.reason))
        if error.status in (408, 429) or (error.status or 0) >= 500 or error.status == 0:
            return TransientError(f"{error.status} {error.reason}")
        return PermanentApiError(int(error.status or 0), str(error.reason), _server_message(error.body))
    if isinstance(error, (urllib3.exceptions.HTTPError, OSError)):
        return TransientError(f"{type(error).__name__}: {error}")
    return error


def load_api_client(pool_size: int) -> client.ApiClient:
    """In-cluster credentials, else the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        # $KUBECONFIG read now (the client reads it once, at import).
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    # Room for every worker thread plus streamed responses (log tails) still being read.
    configuration.connection_pool_maxsize = pool_size * 2
    configuration.retries = 0
    return client.ApiClient(configuration)


class Kube:
    """Async wrappers over the calls the reconciler makes."""

    def __init__(self, api: client.ApiClient, workers: int, request_timeout: float = 30.0) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.timeout = request_timeout
        self.pool = PriorityExecutor(workers)
        self._claims: dict[tuple[str, str], tuple[float, asyncio.Task[bool]]] = {}

    def close(self) -> None:
        self.pool.shutdown()
        self.api.close()  # idle connections; a call still in flight keeps its own

    async def _call(self, priority: Priority, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            call = functools.partial(fn, *args, **kwargs)
            return await asyncio.wrap_future(self.pool.submit(priority, call))
        except Exception as error:  # translated for the caller; nothing is swallowed
            raise classify(error) from error

    async def _raw(self, priority: Priority, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        """The response body as bytes, its connection back in the pool. An unread raw response
        keeps its connection, so the next call would open (and TLS-handshake) a new one: in a
        burst that cost more CPU than everything else the operator does."""

        def call(_request_timeout: float) -> bytes:
            response = fn(*args, _preload_content=False, _request_timeout=_request_timeout, **kwargs)
            try:
                return bytes(response.data)
            finally:
                response.release_conn()

        return await self._call(priority, call)

    async def _json(self, priority: Priority, fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
        """The response as plain JSON: the client's model classes cost more than the request."""
        return dict(json.loads(await self._raw(priority, fn, *args)))

    async def create_configmap(self, body: dict[str, Any]) -> None:
        """Create; an existing one (a previous pass or a previous operator) is fine: it is immutable."""
        with contextlib.suppress(Conflict):
            await self._raw(
                Priority.START, self.core.create_namespaced_config_map, body["metadata"]["namespace"], body
            )

    async def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the Job, or return the existing one of that name (never a second Job)."""
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            return await self._json(Priority.START, self.batch.create_namespaced_job, ns, body)
        except Conflict:
            return await self._json(Priority.START, self.batch.read_namespaced_job, name, ns)

    async def create_secret(self, body: dict[str, Any]) -> None:
        """Create; an existing one (a previous pass or a previous operator) is kept: it is immutable,
        and pods may already read it."""
        with contextlib.suppress(Conflict):
            await self._raw(
                Priority.START, self.core.create_namespaced_secret, body["metadata"]["namespace"], body
            )

    async def create_paddlejob(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the PaddleJob, or return the existing one of that name (never a second one).
        NotFound: the cluster has no PaddleJob CRD (training-operator is not installed)."""
        ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            return await self._json(
                Priority.START,
                self.custom.create_namespaced_custom_object,
                PADDLEJOB_GROUP,
                PADDLEJOB_VERSION,
                ns,
                PADDLEJOB_PLURAL,
                body,
            )
        except Conflict:
            return await self.read_paddlejob(ns, name)

    async def read_paddlejob(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._json(
            Priority.START,
            self.custom.get_namespaced_custom_object,
            PADDLEJOB_GROUP,
            PADDLEJOB_VERSION,
            namespace,
            PADDLEJOB_PLURAL,
            name,
        )

    async def set_paddlejob_suspend(self, namespace: str, name: str, suspend: bool) -> dict[str, Any]:
        return await self._json(
            Priority.START,
            functools.partial(
                self.custom.patch_namespaced_custom_object,
                PADDLEJOB_GROUP,
                PADDLEJOB_VERSION,
                namespace,
                PADDLEJOB_PLURAL,
                name,
                {"spec": {"runPolicy": {"suspend": suspend}}},
            ),
        )

    async def delete_paddlejob(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._raw(
                Priority.WRITE,
                functools.partial(
                    self.custom.delete_namespaced_custom_object,
                    PADDLEJOB_GROUP,
                    PADDLEJOB_VERSION,
                    namespace,
                    PADDLEJOB_PLURAL,
                    name,
                    propagation_policy="Background",
                ),
            )

    async def kueue_pending_message(self, namespace: str, job_uid: str) -> str | None:
        """Why Kueue has not admitted the Job or PaddleJob with this uid: the message of its
        Workload's QuotaReserved=False condition; None when there is none (yet)."""
        call = functools.partial(
            self.custom.list_namespaced_custom_object,
            KUEUE_GROUP,
            KUEUE_VERSION,
            namespace,
            "workloads",
            label_selector=f"{KUEUE_JOB_UID_LABEL}={job_uid}",
            limit=1,
        )
        data = await self._json(Priority.READ, call)
        for workload in data.get("items") or []:
            for cond in (workload.get("status") or {}).get("conditions") or []:
                if (
                    cond.get("type") == "QuotaReserved"
                    and cond.get("status") == "False"
                    and cond.get("message")
                ):
                    return str(cond["message"])[:500]
        return None

    async def set_job_suspend(self, namespace: str, name: str, suspend: bool) -> dict[str, Any]:
        patched = await self._call(
            Priority.START, self.batch.patch_namespaced_job, name, namespace, {"spec": {"suspend": suspend}}
        )
        return self.api.sanitize_for_serialization(patched)

    async def delete_job(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._call(
                Priority.WRITE,
                self.batch.delete_namespaced_job,
                name,
                namespace,
                propagation_policy="Background",
            )

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        result = await self._call(
            Priority.WRITE,
            self.custom.patch_namespaced_custom_object_status,
            names.CJ_GROUP,
            names.CJ_VERSION,
            namespace,
            names.CJ_PLURAL,
            name,
            {"status": patch},
        )
        return dict(result)  # type: ignore[call-overload]

    async def pod_log_tail(
        self, namespace: str, pod: str, lines: int, limit_bytes: int, container: str
    ) -> str:
        # Raw bytes: the client would json-decode a log that happens to be one JSON line.
        data = await self._raw(
            Priority.READ,
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            tail_lines=lines,
            limit_bytes=limit_bytes,
        )
        return data.decode("utf-8", errors="replace")

    async def failed_create_events(self, namespace: str, job: str, uid: str) -> list[str]:
        """Messages of the Job controller's FailedCreate Events on this Job, oldest first: why it
        cannot create its pod (PodSecurity, quota, admission), which its status never says."""
        selector = (
            f"involvedObject.kind=Job,involvedObject.name={job},involvedObject.uid={uid},reason=FailedCreate"
        )
        data = await self._json(
            Priority.READ,
            functools.partial(self.core.list_namespaced_event, field_selector=selector),
            namespace,
        )
        items = sorted(
            data.get("items") or [], key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""
        )
        return [str(e.get("message") or "") for e in items]

    async def has_event(self, namespace: str, name: str, uid: str, reason: str) -> bool:
        """Whether the CompressionJob `name` (uid) already has an Event with this reason."""
        selector = f"involvedObject.uid={uid},involvedObject.name={name},reason={reason}"
        call = functools.partial(self.core.list_namespaced_event, field_selector=selector, limit=1)
        data = await self._json(Priority.READ, call, namespace)
        return bool(data.get("items"))

    async def missing_claims(self, namespace: str, claims: list[str]) -> list[str]:
        """The claims that do not exist. One lookup per claim and CLAIM_CACHE_SECONDS serves every
        job asking (a burst of jobs mounting the same dataset claim costs one GET, not one each)."""
        found = await asyncio.gather(*(self._claim_exists(namespace, claim) for claim in claims))
        return [claim for claim, exists in zip(claims, found, strict=True) if not exists]

    async def _claim_exists(self, namespace: str, claim: str) -> bool:
        key, now = (namespace, claim), time.monotonic()
        cached = self._claims.get(key)
        if cached is None or (cached[1].done() and cached[0] < now):
            if len(self._claims) > 1000:
                self._claims = {k: v for k, v in self._claims.items() if not v[1].done() or v[0] >= now}
            task = asyncio.create_task(self._read_claim(namespace, claim))
            cached = self._claims[key] = (now + CLAIM_CACHE_SECONDS, task)
        try:
            return await asyncio.shield(cached[1])
        except Exception:
            if self._claims.get(key) is cached:
                del self._claims[key]  # an error is not an answer: the next caller asks again
            raise

    async def _read_claim(self, namespace: str, claim: str) -> bool:
        try:
            await self._raw(
                Priority.READ, self.core.read_namespaced_persistent_volume_claim, claim, namespace
            )
        except NotFound:
            return False
        return True
