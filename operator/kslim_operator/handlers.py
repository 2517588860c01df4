"""Kopf handlers: registration only; the work is in `reconciler` and the pure modules.

- indexes of our Jobs, our pods and all CompressionJobs (Kopf fills them before any handler runs,
  so a restarted operator sees existing Jobs before it could think of creating one);
- one daemon per unfinished CompressionJob drives it (reconcile, sleep until poked or due);
- event handlers only poke the daemon of the job whose objects changed.

`kopf run -m kslim_operator.handlers` runs these without leader election (development);
`python -m kslim_operator` adds the Lease, probes and settings checks.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from kslim_operator import names
from kslim_operator.events import Event
from kslim_operator.http import start_metrics_server
from kslim_operator.kube import Conflict, Kube, NotFound, PermanentApiError, TransientError, load_api_client
from kslim_operator.metrics import Metrics
from kslim_operator.reconciler import JobMemory, Reconciler
from kslim_operator.settings import load_settings
from kslim_operator.state import OperatorState
from kslim_operator.status import is_terminal
from kslim_operator.summary import JobSummary, summarize_job
from kslim_operator.views import JobView, PodView, job_view, pod_view

CJ = (names.CJ_GROUP, names.CJ_VERSION, names.CJ_PLURAL)
OURS = {names.LABEL_JOB_NAME: kopf.PRESENT}
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


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


@kopf.on.startup()
async def configure(
    *, settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **kwargs: Any
) -> None:
    config = load_settings()
    logging.getLogger().setLevel(config.log_level)
    settings.persistence.finalizer = names.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase()
    # Only our children are watched (server-side label selector), not every pod of the cluster.
    settings.watching.label_selectors["batch", "v1", "jobs"] = names.LABEL_JOB_NAME
    settings.watching.label_selectors["", "v1", "pods"] = names.LABEL_JOB_NAME
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
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
    state: OperatorState | None = getattr(memo, "state", None)
    server = getattr(memo, "metrics_server", None)
    if server is not None:
        await server.cleanup()
    if state is not None:
        state.metrics.ready.set(0)
        state.kube.close()


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


# Event handlers run after Kopf updated the indexes for the same event: the poked daemon reads
# the new state.
@kopf.on.event("", "v1", "pods", labels=OURS)
async def pod_changed(*, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    memo.state.poke((namespace or "", labels[names.LABEL_JOB_NAME]))


@kopf.on.event(*CJ)
async def cj_changed(
    *, type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    state: OperatorState = memo.state
    state.poke((namespace or "", name))
    if type == "DELETED":
        state.forget_seq(str(body.get("metadata", {}).get("uid", "")))
        state.poke_queued()


# ---- the driver ----------------------------------------------------------------------------


def _unfinished(*, status: kopf.Status, **_: Any) -> bool:
    return not is_terminal(dict(status))


async def _sleep(poke: asyncio.Event, stopped: kopf.DaemonStopped, delay: float) -> None:
    waiters = [asyncio.ensure_future(poke.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waiters, timeout=max(delay, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


# A stopped daemon (job finished, deleted, operator exiting) may finish its pass: it may be between
# a status patch and the events for it.
@kopf.daemon(*CJ, id="drive", when=_unfinished, cancellation_backoff=10.0, cancellation_timeout=5.0)
async def drive(
    *,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: Any,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Drive one CompressionJob until it is finished (the daemon then ends, and Kopf drops the
    finalizer it needed to stop the daemon cleanly)."""
    state: OperatorState = memo.state
    key = (namespace or "", name)
    poke = state.poke_event(key)
    reconciler = Reconciler(state)
    mem = JobMemory()
    failures = 0

    def post(event: Event) -> None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)

    state.metrics.watched.inc()
    try:
        while not stopped:
            poke.clear()
            delay: float | None
            try:
                delay = await reconciler.reconcile(dict(body), mem, post)
                failures = 0
            except (TransientError, Conflict, NotFound, PermanentApiError) as error:
                kind = type(error).__name__
                state.metrics.reconcile_errors.labels(kind=kind).inc()
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                logger.warning(f"reconcile failed ({kind}: {error}); retrying in {delay:.0f} s")
                mem.status = None  # re-read the status from the watched object next time
            except Exception:
                state.metrics.reconcile_errors.labels(kind="Unexpected").inc()
                delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                logger.exception(f"reconcile failed unexpectedly; retrying in {delay:.0f} s")
                mem.status = None
            if delay is None:
                return
            await _sleep(poke, stopped, delay)
    finally:
        state.metrics.watched.dec()
        state.forget(key)
