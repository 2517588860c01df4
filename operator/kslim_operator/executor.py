"""Where the blocking API calls run: a few daemon threads taking the most urgent call first.

Why not `concurrent.futures.ThreadPoolExecutor`:
- it is first come, first served: in a burst of new CompressionJobs, creating a Job (what a user
  waits for) queued behind every status patch and log read submitted before it, and a 200-job burst
  spent most of its apply -> Job time waiting for a free thread;
- its threads are joined at interpreter exit, so a call stuck on a slow or unreachable API server
  kept a stopped operator alive for up to the request timeout. These threads are daemons: once
  Kopf has stopped, nothing waits for a call in flight (its answer has no one to go to).

Calls of the same priority run in submission order. A call cancelled before it starts never runs.
"""

from __future__ import annotations

import concurrent.futures
import enum
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Priority(enum.IntEnum):
    START = 0
    """Create or unsuspend a Job: a user is waiting for it to start."""
    WRITE = 1
    """Status patches, deletions: what the user reads next."""
    READ = 2
    """Log tails, claim checks: nice to have, the first to wait."""


_STOP = 1 << 30  # sorts after every real priority


class PriorityExecutor:
    def __init__(self, workers: int, name: str = "kslim-api") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, concurrent.futures.Future[Any] | None, Any]] = (
            queue.PriorityQueue()
        )
        self._seq = itertools.count()
        self._closed = False
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, priority: Priority, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the API executor is shut down")
            self._queue.put((int(priority), next(self._seq), future, fn))
        return future

    def pending(self) -> int:
        return self._queue.qsize()

    def _work(self) -> None:
        while True:
            _, _, future, fn = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                result = fn()
            except BaseException as error:  # handed to the caller
                future.set_exception(error)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Cancel what has not started and let the threads end; calls in flight are not waited for."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    _, _, future, _ = self._queue.get_nowait()
                except queue.Empty:
                    break
                if future is not None:
                    future.cancel()
            for _ in self.threads:
                self._queue.put((_STOP, next(self._seq), None, None))
