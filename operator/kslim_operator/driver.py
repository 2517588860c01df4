"""One asyncio task per unfinished CompressionJob: reconcile, then sleep until poked or due.

Why our own tasks and not Kopf daemons: Kopf puts a finalizer on every object that has a daemon
(so the daemon is stopped before the object goes). That costs a patch and a JSON diff per job,
blocks `kubectl delete` while the operator is away, and buys nothing here: the children go by
garbage collection (ownerReferences) and the per-job metrics are computed from the index, so
nothing has to happen before a CompressionJob disappears. The operator therefore adds no
finalizer at all. Only the replica holding the Lease runs Kopf, so no job is driven twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kslim_api.contract import redact

from kslim_operator.events import Event
from kslim_operator.kube import Conflict, NotFound, PermanentApiError, TransientError
from kslim_operator.queue import Key
from kslim_operator.reconciler import JobMemory, Reconciler
from kslim_operator.state import OperatorState
from kslim_operator.status import is_terminal

logger = logging.getLogger(__name__)

BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
EventPoster = Callable[[dict[str, Any], Event], None]


@dataclass
class Driver:
    key: Key
    uid: str
    body: dict[str, Any]
    poke: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    finished: bool = False


class Drivers:
    """The running drivers, fed with the latest body of each CompressionJob by the watch."""

    def __init__(self, state: OperatorState, post: EventPoster) -> None:
        self.state = state
        self.post = post
        self.drivers: dict[Key, Driver] = {}

    def update(self, key: Key, body: dict[str, Any]) -> None:
        """A new version of the object: hand it to its driver (starting one if needed) and wake it."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        driver = self.drivers.get(key)
        if driver is not None and driver.uid != uid:  # deleted and re-created under the same name
            self.delete(key)
            driver = None
        if driver is None:
            if is_terminal(body.get("status")):
                return
            driver = self.drivers[key] = Driver(key=key, uid=uid, body=body)
            self.state.pokes[key] = driver.poke
            driver.task = asyncio.create_task(self._run(driver), name=f"kslim driver {key[0]}/{key[1]}")
            self.state.metrics.watched.inc()
        driver.body = body
        driver.poke.set()

    def delete(self, key: Key) -> None:
        driver = self.drivers.pop(key, None)
        if driver is not None and driver.task is not None and not driver.task.done():
            driver.task.cancel()
        self.state.forget(key)

    async def close(self) -> None:
        tasks = [d.task for d in self.drivers.values() if d.task is not None and not d.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, driver: Driver) -> None:
        reconciler = Reconciler(self.state)
        mem = JobMemory()
        failures = 0

        def post(event: Event) -> None:
            self.post(driver.body, event)

        try:
            while True:
                driver.poke.clear()
                delay: float | None
                try:
                    delay = await reconciler.reconcile(driver.body, mem, post)
                    failures = 0
                except (TransientError, Conflict, NotFound, PermanentApiError) as error:
                    kind = type(error).__name__
                    self.state.metrics.reconcile_errors.labels(kind=kind).inc()
                    delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                    failures += 1
                    logger.warning(
                        "%s/%s: reconcile failed (%s: %s); retrying in %.0f s",
                        *driver.key,
                        kind,
                        redact(str(error)),
                        delay,
                    )
                    mem.status = None  # re-read the status from the watched object next time
                except Exception:
                    self.state.metrics.reconcile_errors.labels(kind="Unexpected").inc()
                    delay = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                    failures += 1
                    logger.exception(
                        "%s/%s: reconcile failed unexpectedly; retrying in %.0f s", *driver.key, delay
                    )
                    mem.status = None
                if delay is None:
                    driver.finished = True  # never restarted for this object by this process
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(driver.poke.wait(), timeout=max(delay, 0.0))
        finally:
            self.state.metrics.watched.dec()
            self.state.queued.discard(driver.key)
