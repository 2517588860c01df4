"""Leader election on a coordination.k8s.io/v1 Lease, so two replicas never both act.

Semantics as in client-go's leaderelection: a standby takes the Lease only when its holder has not
renewed it for leaseDurationSeconds as observed on the standby's own clock (no clock comparison
between machines); the leader renews every retry period and stops acting when it could not renew
for renewDeadline (< leaseDuration), before any standby may take over. Writes use the Lease's
resourceVersion, so two candidates can never both win the same round.

The election runs before Kopf starts (``python -m kslim_operator``): a standby starts no handler
at all, not even Kopf's finalizer bookkeeping.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)

#: At most this long for handing the Lease back on the way out.
RELEASE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    duration_seconds: int
    renew_time: str | None
    transitions: int
    resource_version: str | None


@dataclass
class Observed:
    """What a candidate last saw of the Lease, and when (on its own monotonic clock)."""

    record: LeaseRecord | None = None
    seen_at: float = 0.0


def micro_time() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def record_from(lease: client.V1Lease | None) -> LeaseRecord | None:
    if lease is None:
        return None
    spec = lease.spec or client.V1LeaseSpec()
    renew = spec.renew_time
    return LeaseRecord(
        holder=spec.holder_identity or None,
        duration_seconds=int(spec.lease_duration_seconds or 0),
        renew_time=renew.isoformat() if isinstance(renew, datetime.datetime) else renew,
        transitions=int(spec.lease_transitions or 0),
        resource_version=lease.metadata.resource_version if lease.metadata else None,
    )


def can_take(observed: Observed, current: LeaseRecord | None, identity: str, now: float) -> bool:
    """Whether `identity` may write itself as holder now (pure).

    The clock starts when the record was first seen in its current form: a holder that keeps
    renewing changes the record, which restarts the clock."""
    if current is None or current.holder in (None, identity):
        return True
    if observed.record != current:
        return False  # it changed since we last looked: the holder is alive
    return now - observed.seen_at >= current.duration_seconds


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: int,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coord = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self.clock = clock
        self.observed = Observed()
        self.last_renewed = 0.0
        self.lost = threading.Event()
        self._stop = threading.Event()

    # ---- one round

    def _read(self, timeout: float = 10) -> client.V1Lease | None:
        try:
            return self.coord.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease after it."""
        lease = self._read()
        current = record_from(lease)
        now = self.clock()
        if current != self.observed.record:
            self.observed = Observed(current, now)
        if not can_take(self.observed, current, self.identity, now):
            return False
        stamp = micro_time()
        if lease is None:
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=self.lease_duration,
                    acquire_time=stamp,
                    renew_time=stamp,
                    lease_transitions=0,
                ),
            )
            try:
                self.coord.create_namespaced_lease(self.namespace, body, _request_timeout=10)
            except ApiException as error:
                if error.status == 409:
                    return False
                raise
        else:
            assert current is not None
            spec = lease.spec or client.V1LeaseSpec()
            lease.spec = spec
            if current.holder != self.identity:
                spec.acquire_time = stamp
                spec.lease_transitions = current.transitions + 1
            spec.holder_identity = self.identity
            spec.lease_duration_seconds = self.lease_duration
            spec.renew_time = stamp
            try:
                self.coord.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=10)
            except ApiException as error:
                if error.status == 409:  # someone else wrote it first
                    return False
                raise
        self.last_renewed = self.clock()
        return True

    # ---- loops

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until we lead (True) or `stop` is set (False)."""
        stopper = stop or self._stop
        logger.info(
            "leader election: waiting for Lease %s/%s as %s", self.namespace, self.name, self.identity
        )
        while not stopper.is_set():
            try:
                if self.try_acquire_or_renew():
                    logger.info("leader election: acquired Lease %s/%s", self.namespace, self.name)
                    return True
            except Exception as error:  # keep trying; the API may be briefly unavailable
                logger.warning("leader election: %s", error)
            stopper.wait(self.retry_period)
        return False

    def renew_forever(self, on_lost: Callable[[], None]) -> None:
        """Renew until stopped; call `on_lost` once if the Lease could not be renewed in time."""
        while not self._stop.wait(self.retry_period):
            try:
                if self.try_acquire_or_renew():
                    continue
                logger.error("leader election: another replica holds the Lease now")
            except Exception as error:
                logger.warning("leader election: renewal failed: %s", error)
                if self.clock() - self.last_renewed < self.renew_deadline:
                    continue
            if self._stop.is_set():
                return  # stopping anyway (a renewal that failed while we shut down is no loss)
            self.lost.set()
            on_lost()
            return

    def is_leading(self) -> bool:
        return not self.lost.is_set() and self.clock() - self.last_renewed < self.renew_deadline

    def start_renewing(self, on_lost: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=self.renew_forever, args=(on_lost,), name="kslim-lease", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop renewing (the Lease then expires unless released)."""
        self._stop.set()

    def release(self, timeout: float = RELEASE_TIMEOUT_SECONDS) -> None:
        """Stop renewing and hand the Lease back at once, so a standby takes over without waiting.
        Bounded: an API server that does not answer must not hold up a stopping operator (the
        Lease then simply expires)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        try:
            while True:
                lease = self._read(max(0.1, (deadline - time.monotonic()) / 2))
                if lease is None or not lease.spec or lease.spec.holder_identity != self.identity:
                    return
                lease.spec.holder_identity = None
                lease.spec.lease_duration_seconds = 1
                left = max(0.1, deadline - time.monotonic())
                try:
                    self.coord.replace_namespaced_lease(
                        self.name, self.namespace, lease, _request_timeout=left
                    )
                    return
                except ApiException as error:
                    # a renewal already under way when we stopped wrote first: read it and try again
                    if error.status != 409 or time.monotonic() >= deadline:
                        raise
        except Exception as error:
            logger.warning("leader election: could not release the Lease: %s", error)
