"""One reconcile pass for one CompressionJob: read the indexes, decide (pure), then act.

A pass is idempotent and level-triggered: it looks at the Job and pods as they are now, so a
restarted operator, a lost watch event or a retried pass all converge on the same state. The
children have deterministic names, so a pass can never create a second Job.

Acts, in order: create the ConfigMap and Job if missing; (un)suspend the Job (user suspension,
the operator's queue); read the progress line from the running pod's log tail; patch the status
if it changed (at most once per status_min_interval_seconds); post events; end the Job if the
pod could not start in time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kslim_api.contract import PADDLEJOB_KIND, Phase, ProgressLine, Reason, last_progress

from kslim_operator import events as ev
from kslim_operator import names, queue, storage
from kslim_operator.builders import build_configmap, build_handover_secret, build_job, build_paddlejob
from kslim_operator.conditions import ACCEPTED, is_true, now_rfc3339
from kslim_operator.kube import NotFound, PermanentApiError, TransientError
from kslim_operator.observe import Observation, observe, parse_time
from kslim_operator.refusals import POD_CREATE_REASONS, creation_refused, engine_refused, pod_create_failure
from kslim_operator.request import InvalidSpec, JobRequest, check_installation, parse_request
from kslim_operator.settings import Settings
from kslim_operator.state import OperatorState
from kslim_operator.status import Inputs, build_status, diff, invalid_spec_status
from kslim_operator.views import JobView, PodView, job_view, paddlejob_view

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 50
LOG_TAIL_BYTES = 64 * 1024
CLAIM_CHECK_SECONDS = 10.0
#: How often a Job that has no pod yet is checked for FailedCreate Events.
POD_CREATE_CHECK_SECONDS = 2.0
#: How often a job Kueue holds back has its Workload read (why it waits).
KUEUE_CHECK_SECONDS = 10.0
RESYNC_SECONDS = 30.0
#: A Job we just wrote is trusted over the index for this long (the watch event is on its way).
OWN_WRITE_TRUST_SECONDS = 10.0

EventSink = Callable[[ev.Event], None]


@dataclass
class JobMemory:
    """What one job's daemon remembers between passes (lost on restart; nothing depends on it)."""

    status: dict[str, Any] | None = None
    """The status as last written by us (fresher than the watched body until its event arrives)."""
    last_patch: float = float("-inf")
    job: JobView | None = None
    job_written: float = float("-inf")
    req: JobRequest | None = None
    req_key: tuple[Any, ...] = ()
    progress: ProgressLine | None = None
    progress_time: str | None = None
    last_log_poll: float = float("-inf")
    stage: str | None = None
    stage_since: float | None = None
    missing_claims: list[str] = field(default_factory=list)
    claims_checked: float = float("-inf")
    pod_create_failure: tuple[str, str] | None = None
    pod_create_checked: float = float("-inf")
    kueue_message: str | None = None
    kueue_checked: float = float("-inf")
    warned_generation: int = 0
    created_here: bool = False
    """This process created the Job (an adopted one is not counted in kslim_jobs_created_total)."""
    events_checked: bool = False


def _request(body: dict[str, Any], mem: JobMemory) -> JobRequest:
    """Validated request, cached while the spec, labels and generation stay the same."""
    meta = body.get("metadata") or {}
    key = (
        meta.get("uid"),
        meta.get("generation"),
        json.dumps(body.get("spec"), sort_keys=True, default=str),
        tuple(sorted((meta.get("labels") or {}).items())),
    )
    if mem.req is None or mem.req_key != key:
        mem.req = parse_request(body)
        mem.req_key = key
    return mem.req


class Refused(Exception):
    """The API server refused a child for good; `observation` is the Failed outcome."""

    def __init__(self, observation: Observation) -> None:
        super().__init__(observation.message)
        self.observation = observation


def _rfc3339(value: str) -> str | None:
    """A timestamp as the API writes it (the client's models give `+00:00`, watched JSON `Z`)."""
    parsed = parse_time(value)
    return now_rfc3339(parsed) if parsed is not None else None


def pick_job(indexed: JobView | None, mem: JobMemory, clock: float) -> JobView | None:
    """The index's view, unless our own recent write is newer (the watch event has not arrived)."""
    own = mem.job
    if own is None:
        return indexed
    if indexed is None:
        return own if clock - mem.job_written < OWN_WRITE_TRUST_SECONDS else None
    return own if own.uid == indexed.uid and own.generation > indexed.generation else indexed


def desired_suspend(req: JobRequest, admitted: bool) -> bool | None:
    """What the Job's suspend should be; None: not ours to decide (Kueue admits it)."""
    if req.spec.run_policy.suspend:
        return True
    if req.kueue_managed:
        return None
    return not admitted


class Reconciler:
    def __init__(self, state: OperatorState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.clock = clock

    @property
    def settings(self) -> Settings:
        return self.state.settings

    async def reconcile(self, body: dict[str, Any], mem: JobMemory, post: EventSink) -> float | None:
        """One pass. Returns the seconds until the next pass is due, or None when the job is finished."""
        meta = body["metadata"]
        key: queue.Key = (meta["namespace"], meta["name"])
        now_dt = datetime.datetime.now(datetime.UTC)
        now = now_rfc3339(now_dt)
        current = mem.status if mem.status is not None else dict(body.get("status") or {})
        try:
            req = _request(body, mem)
            check_installation(req, self.settings.allowed_service_accounts)
        except InvalidSpec as error:
            desired = invalid_spec_status(current, str(error), int(meta.get("generation") or 1), now)
            obs = Observation(Phase.FAILED, Reason.INVALID_SPEC, str(error), terminal=True)
            wait = await self._write_status(key, current, desired, obs, mem, post)
            return wait

        indexed = await self._read_paddlejob(req) if req.multi_node else self.state.job_of(key)
        if indexed is not None and indexed.owner_uid not in ("", req.uid):
            return 1.0  # the Job of a deleted CompressionJob of this name: wait for garbage collection
        job = pick_job(indexed, mem, self.clock())
        job_created_before = bool(current.get("startTime"))

        limit = self.settings.max_concurrent_jobs
        admitted = limit <= 0 or queue.is_admitted(
            key, self.state.queue_entries(), self.state.holding(), limit
        )
        want = desired_suspend(req, admitted)
        queued = want is True and not req.spec.run_policy.suspend

        if job is None and not job_created_before:
            try:
                job = await self._create_children(req, suspend=True if want is None else want, mem=mem)
            except Refused as refused:
                # Permanent: the same spec would be refused again, so no retry loop (the driver's
                # backoff is for errors that pass).
                obs = refused.observation
                desired = invalid_spec_status(current, obs.message, req.generation, now, reason=obs.reason)
                return await self._write_status(key, current, desired, obs, mem, post)
            if job is None:
                return 1.0
        elif job is not None and not job.finished and want is not None and job.suspend != want:
            job = await self._set_suspend(job, want)
            mem.job, mem.job_written = job, self.clock()

        if not mem.events_checked:
            await self._recover_job_created_event(req, current, job, mem, post)

        if job is not None and job.spec_hash and job.spec_hash != req.spec_hash:
            self._warn_spec_change(req, mem, post)

        pods = self.state.pods_of(key)
        # the leader's log: only worker 0 of a multi-node job prints progress
        running = next((p for p in pods if p.running and not p.terminated and p.leader), None)
        if running is not None:
            await self._poll_progress(req, running, mem, now)
        await self._check_claims(req, job, pods, mem)
        await self._check_pod_creation(req, job, pods, mem)
        await self._check_kueue(req, job, mem)

        obs = observe(
            req,
            job,
            pods,
            job_created_before=job_created_before,
            queued=queued,
            max_concurrent_jobs=self.settings.max_concurrent_jobs,
            missing_claims=mem.missing_claims,
            now=now_dt,
            start_timeout_seconds=self.settings.start_timeout_seconds,
            pod_create_failure=mem.pod_create_failure,
            kueue_message=mem.kueue_message,
        )
        if obs.reason == "Queued":
            self.state.queued.add(key)
        else:
            self.state.queued.discard(key)

        inputs = Inputs(
            now=now,
            job_created=job is not None or job_created_before,
            progress=mem.progress if obs.phase == Phase.RUNNING else None,
            progress_time=mem.progress_time,
            job_created_at=_rfc3339(job.created) if job is not None else None,
        )
        desired = build_status(req, obs, current, inputs)
        wait = await self._write_status(key, current, desired, obs, mem, post)
        if wait is not None:
            return wait  # rate-limited: come back when a patch is allowed
        if obs.stop_job and job is not None:
            if job.kind == PADDLEJOB_KIND:
                await self.state.kube.delete_paddlejob(req.namespace, job.name)
            else:
                await self.state.kube.delete_job(req.namespace, job.name)
        if obs.terminal:
            self._observe_stage_end(mem, None)
            self.state.poke_queued()
            return None
        if obs.phase == Phase.RUNNING:
            return self.settings.progress_interval_seconds
        if obs.reason in ("Queued", "Suspended"):
            return RESYNC_SECONDS  # woken up by a poke when a slot frees or the spec changes
        if obs.reason == "PodStarting" or obs.reason in POD_CREATE_REASONS:
            return POD_CREATE_CHECK_SECONDS  # no pod event will wake us: the Job's Events tell why
        return CLAIM_CHECK_SECONDS  # a pod that cannot start is re-checked (claims, start timeout)

    # ---- steps

    async def _read_paddlejob(self, req: JobRequest) -> JobView | None:
        """A multi-node job's PaddleJob, read at each pass (the operator watches no PaddleJobs: a
        cluster without training-operator must not stall its start; the workers' pods, which it
        does watch, wake the pass)."""
        try:
            return paddlejob_view(
                await self.state.kube.read_paddlejob(req.namespace, names.job_name(req.name))
            )
        except NotFound:
            return None

    async def _set_suspend(self, job: JobView, suspend: bool) -> JobView:
        kube = self.state.kube
        if job.kind == PADDLEJOB_KIND:
            return paddlejob_view(await kube.set_paddlejob_suspend(job.namespace, job.name, suspend))
        return job_view(await kube.set_job_suspend(job.namespace, job.name, suspend))

    async def _create_children(self, req: JobRequest, *, suspend: bool, mem: JobMemory) -> JobView | None:
        """Create the ConfigMap and the Job (a multi-node job: the hand-over Secret and the
        PaddleJob); None if a child of that name belongs to someone else."""
        kube = self.state.kube
        kind = PADDLEJOB_KIND if req.multi_node else "Job"
        try:
            configmap = build_configmap(req)
            if req.multi_node:
                secret, child = (
                    build_handover_secret(req),
                    build_paddlejob(req, self.settings, suspend=suspend),
                )
            else:
                secret, child = None, build_job(req, self.settings, suspend=suspend)
        except (ValueError, TypeError) as error:  # a spec the builders cannot express
            raise Refused(creation_refused(kind, 422, str(error))) from error
        # All at once: a pod waits for its ConfigMap and Secret anyway (the kubelet retries).
        creations: dict[str, Any] = {"ConfigMap": kube.create_configmap(configmap)}
        if secret is not None:
            creations["Secret"] = kube.create_secret(secret)
        creations[kind] = kube.create_paddlejob(child) if req.multi_node else kube.create_job(child)
        results = await asyncio.gather(*creations.values(), return_exceptions=True)
        for what, result in zip(creations, results, strict=True):
            if req.multi_node and what == kind and isinstance(result, NotFound | PermanentApiError):
                raise Refused(engine_refused(result)) from result
            if isinstance(result, PermanentApiError):
                raise Refused(creation_refused(what, result.status, result.message)) from result
        for result in results:
            if isinstance(result, BaseException):
                raise result
        created = results[-1]
        assert isinstance(created, dict)
        job = paddlejob_view(created) if req.multi_node else job_view(created)
        if job.owner_uid not in ("", req.uid):
            return None
        mem.job, mem.job_written = job, self.clock()
        mem.created_here = True
        logger.info("created %s %s/%s (suspend=%s)", kind, req.namespace, job.name, suspend)
        return job

    async def _recover_job_created_event(
        self, req: JobRequest, current: dict[str, Any], job: JobView | None, mem: JobMemory, post: EventSink
    ) -> None:
        """A status that already says JobCreated, seen first by this process: the process that wrote
        it may have died before its Event went out. Post it unless it is there (one per job)."""
        mem.events_checked = True
        if job is None or not is_true(current.get("conditions"), ACCEPTED):
            return  # the transition to Accepted posts it
        try:
            if await self.state.kube.has_event(req.namespace, req.name, req.uid, "JobCreated"):
                return
        except Exception as error:  # cannot tell: a missing Event beats a duplicate one
            logger.debug("cannot list the events of %s/%s: %s", req.namespace, req.name, error)
            return
        post(ev.job_created(job.name))

    def _warn_spec_change(self, req: JobRequest, mem: JobMemory, post: EventSink) -> None:
        if mem.warned_generation == req.generation:
            return
        mem.warned_generation = req.generation
        post(
            ev.Event(
                ev.WARNING,
                "SpecChangeIgnored",
                f"generation {req.generation} changed the spec after the Job was created; only "
                "spec.runPolicy.suspend can change now. Delete and re-create the CompressionJob to apply it.",
            )
        )

    async def _poll_progress(self, req: JobRequest, pod: PodView, mem: JobMemory, now: str) -> None:
        """The newest progress line in the running pod's log tail.

        Why the log and not a push from the runner: reading the log keeps API credentials out of the
        GPU pods (the runner pod mounts no service account token), works with any serviceAccount a
        user picks, and costs one small GET per running job per interval; the final result still
        travels in the termination message, so a lost log line only delays progress, never the
        outcome."""
        if self.clock() - mem.last_log_poll < self.settings.progress_interval_seconds:
            return
        mem.last_log_poll = self.clock()
        try:
            tail = await self.state.kube.pod_log_tail(
                req.namespace, pod.name, LOG_TAIL_LINES, LOG_TAIL_BYTES, pod.container
            )
        except (NotFound, TransientError) as error:
            logger.debug("no log for %s/%s yet: %s", req.namespace, pod.name, error)
            return
        except Exception as error:  # the log is a nice-to-have; the outcome comes from the pod status
            logger.warning("cannot read the log of %s/%s: %s", req.namespace, pod.name, error)
            return
        line = last_progress(tail)
        if line is None or line == mem.progress:
            return
        if mem.stage != line.stage:
            self._observe_stage_end(mem, line.stage)
        mem.progress, mem.progress_time = line, now

    def _observe_stage_end(self, mem: JobMemory, next_stage: str | None) -> None:
        if mem.stage is not None and mem.stage_since is not None:
            self.state.metrics.stage_duration.labels(stage=mem.stage).observe(
                max(self.clock() - mem.stage_since, 0.0)
            )
        mem.stage = next_stage
        mem.stage_since = self.clock() if next_stage else None

    async def _check_pod_creation(
        self, req: JobRequest, job: JobView | None, pods: list[PodView], mem: JobMemory
    ) -> None:
        """While the Job has no pod, read its FailedCreate Events: the only place the reason shows.
        (A PaddleJob's are training-operator's, not read: its start timeout still applies.)"""
        if job is None or job.kind != "Job" or job.suspend or job.finished or pods:
            mem.pod_create_failure = None
            return
        if mem.pod_create_checked == float("-inf"):  # give the Job controller its first try
            mem.pod_create_checked = self.clock()
            return
        if self.clock() - mem.pod_create_checked < POD_CREATE_CHECK_SECONDS:
            return
        mem.pod_create_checked = self.clock()
        try:
            messages = await self.state.kube.failed_create_events(req.namespace, job.name, job.uid)
        except Exception as error:  # a nice-to-have, like the claim check: the timeout still applies
            logger.debug("cannot read the events of Job %s/%s: %s", req.namespace, job.name, error)
            return
        mem.pod_create_failure = pod_create_failure(messages)

    async def _check_kueue(self, req: JobRequest, job: JobView | None, mem: JobMemory) -> None:
        """While Kueue holds the job, why: its Workload's QuotaReserved condition (e.g. which quota
        is short), which nothing on the Job says."""
        if job is None or not job.kueue or not job.suspend or req.spec.run_policy.suspend or job.finished:
            mem.kueue_message = None
            return
        if self.clock() - mem.kueue_checked < KUEUE_CHECK_SECONDS:
            return
        mem.kueue_checked = self.clock()
        try:
            mem.kueue_message = await self.state.kube.kueue_pending_message(req.namespace, job.uid)
        except Exception as error:  # a nice-to-have (RBAC, Kueue's API version): "waiting" still holds
            logger.debug("cannot read the Workload of %s/%s: %s", req.namespace, req.name, error)

    async def _check_claims(
        self, req: JobRequest, job: JobView | None, pods: list[PodView], mem: JobMemory
    ) -> None:
        """While a pod waits to start, check that the PVCs it mounts exist (a clear reason, early)."""
        waiting = (
            job is not None and not job.suspend and any(not p.running and not p.terminated for p in pods)
        )
        if not waiting:
            mem.missing_claims = []
            return
        if self.clock() - mem.claims_checked < CLAIM_CHECK_SECONDS:
            return
        mem.claims_checked = self.clock()
        claims = storage.get_claims(req.raw_spec)
        try:
            mem.missing_claims = await self.state.kube.missing_claims(req.namespace, claims)
        except Exception as error:  # RBAC may not allow it; the pod status still tells
            logger.debug("cannot check claims of %s/%s: %s", req.namespace, req.name, error)
            mem.missing_claims = []

    async def _write_status(
        self,
        key: queue.Key,
        current: dict[str, Any],
        desired: dict[str, Any],
        obs: Observation,
        mem: JobMemory,
        post: EventSink,
    ) -> float | None:
        """Patch what changed; returns seconds to wait if the rate limit holds the patch back."""
        patch = diff(current, desired)
        if not patch:
            mem.status = current
            return None
        wait = mem.last_patch + self.settings.status_min_interval_seconds - self.clock()
        if wait > 0:
            return wait
        result = await self.state.kube.patch_status(key[0], key[1], patch)
        mem.status = dict(result.get("status") or {**current, **patch})
        mem.last_patch = self.clock()
        self.state.metrics.status_patches.inc()
        for event in ev.transition_events(current, desired, obs, names.job_name(key[1])):
            post(event)
        self._count_transition(current, desired, obs, mem.created_here)
        return None

    def _count_transition(
        self, before: dict[str, Any], after: dict[str, Any], obs: Observation, created_here: bool
    ) -> None:
        m = self.state.metrics
        was, now = before.get("phase"), after.get("phase")
        if created_here and not before.get("startTime") and after.get("startTime"):
            m.created.inc()
        if (after.get("attempts") or 0) > (before.get("attempts") or 0) >= 1:
            m.retries.inc((after.get("attempts") or 0) - (before.get("attempts") or 0))
        if now in (Phase.SUCCEEDED, Phase.FAILED) and was != now:
            if now == Phase.SUCCEEDED:
                m.succeeded.inc()
            else:
                m.failed.labels(reason=obs.reason).inc()
            start, end = parse_time(after.get("startTime")), parse_time(after.get("completionTime"))
            if start and end:
                m.job_duration.labels(outcome=now).observe(max((end - start).total_seconds(), 0.0))
