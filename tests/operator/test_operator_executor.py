"""The API executor (most urgent call first, daemon threads) and the shared claim lookups."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from kslim_operator.executor import Priority, PriorityExecutor
from kslim_operator.kube import Kube, NotFound
from kubernetes import client
from kubernetes.client.exceptions import ApiException


def test_the_most_urgent_waiting_call_runs_first_and_equal_ones_in_order() -> None:
    pool = PriorityExecutor(1)
    gate, ran = threading.Event(), []
    try:
        blocker = pool.submit(Priority.READ, gate.wait)  # occupies the only thread
        time.sleep(0.05)
        futures = [
            pool.submit(Priority.READ, lambda: ran.append("read")),
            pool.submit(Priority.WRITE, lambda: ran.append("write-1")),
            pool.submit(Priority.START, lambda: ran.append("start")),
            pool.submit(Priority.WRITE, lambda: ran.append("write-2")),
        ]
        gate.set()
        for f in [blocker, *futures]:
            f.result(timeout=5)
        assert ran == ["start", "write-1", "write-2", "read"]
    finally:
        gate.set()
        pool.shutdown()


def test_a_call_cancelled_while_waiting_never_runs_and_errors_reach_the_caller() -> None:
    pool = PriorityExecutor(1)
    gate, ran = threading.Event(), []
    try:
        pool.submit(Priority.READ, gate.wait)
        time.sleep(0.05)
        waiting = pool.submit(Priority.START, lambda: ran.append("cancelled"))
        assert waiting.cancel()

        def boom() -> None:
            raise ValueError("no")

        failing = pool.submit(Priority.WRITE, boom)
        gate.set()
        assert isinstance(failing.exception(timeout=5), ValueError)
        assert ran == []
    finally:
        gate.set()
        pool.shutdown()


def test_threads_are_daemons_and_shutdown_neither_waits_for_calls_in_flight_nor_runs_queued_ones() -> None:
    pool = PriorityExecutor(2)
    gate = threading.Event()
    try:
        assert all(t.daemon for t in pool.threads)
        in_flight = [pool.submit(Priority.READ, gate.wait) for _ in range(2)]
        time.sleep(0.05)
        queued = pool.submit(Priority.START, lambda: None)
        started = time.monotonic()
        pool.shutdown()
        assert time.monotonic() - started < 0.5
        assert queued.cancelled() and not any(f.done() for f in in_flight)
    finally:
        gate.set()
    for thread in pool.threads:
        thread.join(timeout=5)
        assert not thread.is_alive()


class _Response:
    """What the client returns for `_preload_content=False`: a body and a connection to hand back."""

    data = b"{}"

    def release_conn(self) -> None:
        pass


class _Claims:
    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.reads: list[str] = []

    def read_namespaced_persistent_volume_claim(self, name: str, namespace: str, **_: Any) -> _Response:
        self.reads.append(name)
        time.sleep(0.05)
        if name not in self.existing:
            raise ApiException(status=404, reason="Not Found")
        return _Response()


def test_claim_lookups_are_shared_by_every_job_asking_at_once() -> None:
    kube = Kube(client.ApiClient(), workers=4)
    kube.core = _Claims({"data"})  # type: ignore[assignment]

    async def many() -> list[list[str]]:
        return list(
            await asyncio.gather(*(kube.missing_claims("ns", ["data", "artifacts"]) for _ in range(50)))
        )

    try:
        answers = asyncio.run(many())
        assert answers == [["artifacts"]] * 50
        assert sorted(kube.core.reads) == ["artifacts", "data"]  # type: ignore[attr-defined]
    finally:
        kube.close()


def test_a_failed_claim_lookup_is_not_remembered() -> None:
    kube = Kube(client.ApiClient(), workers=1)
    calls: list[str] = []

    class Flaky:
        def read_namespaced_persistent_volume_claim(self, name: str, namespace: str, **_: Any) -> _Response:
            calls.append(name)
            if len(calls) == 1:
                raise ApiException(status=403, reason="Forbidden")
            return _Response()

    kube.core = Flaky()  # type: ignore[assignment]
    try:
        try:
            asyncio.run(kube.missing_claims("ns", ["data"]))
        except Exception as error:
            assert not isinstance(error, NotFound)
        else:
            raise AssertionError("the 403 should reach the caller")
        assert asyncio.run(kube.missing_claims("ns", ["data"])) == []
        assert calls == ["data", "data"]
    finally:
        kube.close()
