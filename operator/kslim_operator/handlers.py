"""Kopf handlers: registration only; the work is in `reconciler` and the pure modules.

- indexes of our Jobs, our pods and all CompressionJobs (Kopf fills them before any handler runs,
  so a restarted operator sees existing Jobs before it could think of creating one);
- one driver task per unfinished CompressionJob (see `driver`: reconcile, sleep until poked or due);
- event handlers only hand over new bodies and poke the driver of the job whose objects changed.

`kopf run -m kslim_operator.handlers` runs these without leader election (development);
`python -m kslim_operator` adds the Lease, probes and settings checks.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast

import kopf
from kslim_api.contract import redact

from kslim_operator import names
from kslim_operator.driver import Drivers
from kslim_operator.events import Event
from kslim_operator.http import start_metrics_server
from kslim_operator.kube import Kube, load_api_client
from kslim_operator.metrics import Metrics
from kslim_operator.settings import load_settings
from kslim_operator.state import OperatorState
from kslim_operator.summary import JobSummary, summarize_job
from kslim_operator.views import JobView, PodView, job_view, pod_view

CJ = (names.CJ_GROUP, names.CJ_VERSION, names.CJ_PLURAL)
OURS = {names.LABEL_JOB_NAME: kopf.PRESENT}
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff base at all: there are no on.create/on.update handlers here (a daemon and indexes
    drive everything), yet Kopf would deep-copy every watched pod and Job to build one, about 5 ms
    per event, a third of the operator's CPU in a burst. Nothing is stored on the objects either."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        pass


def post_event(body: dict[str, Any], event: Event) -> None:
    # Kopf only reads apiVersion, kind and metadata of the object it gets.
    kopf.event(cast(kopf.Body, body), type=event.type, reason=event.reason, message=redact(event.message))


@kopf.on.startup()
async def configure(
    *, settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    config = load_settings()
    logging.getLogger().setLevel(config.log_level)
    # Kopf logs "Handler '...' succeeded." at INFO for every watch event (thousands in a burst);
    # only DEBUG keeps those lines.
    if config.log_level != "DEBUG":
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # No finalizer is ever needed (see `driver`); Kopf's own is renamed in case a future handler needs one.
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Only our children are watched (server-side label selector), not every pod of the cluster.
    settings.watching.label_selectors["batch", "v1", "jobs"] = names.LABEL_JOB_NAME
    settings.watching.label_selectors["", "v1", "pods"] = names.LABEL_JOB_NAME
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    # On stop, events still queued per object are dropped after this long (the next start lists
    # everything anyway); Kopf's default of 2 s only delayed the exit.
    settings.queueing.exit_timeout = 0.5
    settings.execution.max_workers = config.api_workers
    kube = Kube(load_api_client(config.api_workers), workers=config.api_workers)
    state = OperatorState(
        settings=config,
        kube=kube,
        metrics=Metrics(),
        jobs=kwargs["kslim_jobs"],
        pods=kwargs["kslim_pods"],
        cjs=kwargs["kslim_cjs"],
    )
    state.metrics = Metrics(source=state.summaries)
    memo.state = state
    memo.drivers = Drivers(state, post_event)
    if config.metrics_port:
        memo.metrics_server = await start_metrics_server(state.metrics.registry, config.metrics_port)
    state.metrics.ready.set(1)
    logger.info(
        "kslim operator: image %s, maxConcurrentJobs %s, watching %s",
        config.image,
        config.max_concurrent_jobs or "unlimited",
        ", ".join(config.namespaces) or "all namespaces",
    )


@kopf.on.cleanup()
async def shutdown(*, memo: Any, **_: Any) -> None:
    drivers: Drivers | None = getattr(memo, "drivers", None)
    if drivers is not None:
        await drivers.close()
    state: OperatorState | None = getattr(memo, "state", None)
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        await server.cleanup()
    if state is not None:
        state.metrics.ready.set(0)
        state.kube.close()
    stopped = getattr(memo, "stopped", None)  # `python -m kslim_operator` waits for this, not for Kopf
    if stopped is not None:
        stopped.set()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's service account in a cluster, else $KUBECONFIG as it is now (the client library
    reads that variable once, at import), else whatever the client library finds."""
    if os.path.exists(SERVICE_ACCOUNT_TOKEN):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs) or kopf.login_via_client(**kwargs)


# ---- indexes (async, like every handler here: sync ones would each hop through Kopf's thread pool)


@kopf.index("batch", "v1", "jobs", labels=OURS)
async def kslim_jobs(
    *, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[Any, JobView]:
    return {(namespace or "", labels[names.LABEL_JOB_NAME]): job_view(dict(body))}


@kopf.index("", "v1", "pods", labels=OURS)
async def kslim_pods(
    *, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[Any, PodView]:
    return {(namespace or "", labels[names.LABEL_JOB_NAME]): pod_view(dict(body))}


@kopf.index(*CJ)
async def kslim_cjs(
    *, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> dict[Any, JobSummary]:
    summary = summarize_job(dict(body))
    state: OperatorState | None = getattr(memo, "state", None)
    if state is not None:
        state.seq_of(summary.uid)
    return {(namespace or "", name): summary}


# ---- wake-ups ------------------------------------------------------------------------------


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(
    *, type: str, body: kopf.Body, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    state: OperatorState = memo.state
    state.poke((namespace or "", labels[names.LABEL_JOB_NAME]))
    view = job_view(dict(body))
    if type == "DELETED" or view.finished or view.suspend:
        state.poke_queued()


# Event handlers run after Kopf updated the indexes for the same event: the poked driver reads
# the new state.
@kopf.on.event("", "v1", "pods", labels=OURS)
async def pod_changed(*, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    memo.state.poke((namespace or "", labels[names.LABEL_JOB_NAME]))


@kopf.on.event(*CJ)
async def cj_changed(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    state: OperatorState = memo.state
    key = (namespace or "", name)
    if type == "DELETED":
        memo.drivers.delete(key)
        state.forget_seq(str(body.get("metadata", {}).get("uid", "")))
        state.poke_queued()
    else:
        memo.drivers.update(key, dict(body))
