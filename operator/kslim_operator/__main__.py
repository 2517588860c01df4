"""`python -m kslim_operator`: check the settings, take the Lease, then run Kopf.

Exit codes: 0 stopped cleanly; 1 leadership lost (the pod restarts and stands by) or Kopf failed;
2 bad settings.

Stopping: SIGTERM/SIGINT while still starting (importing) end the process with 0 before it talks
to the API server; they make a standby quit at once, and a leader stop Kopf the graceful way
(its watchers, then our cleanup handler). Kopf runs on a daemon thread so that this process, not
Kopf, decides when it has waited enough: once the cleanup has run (or STOP_DEADLINE_SECONDS have
passed) it hands the Lease back and exits. Kopf itself would go on waiting up to 5 s for leftover
tasks of its own (a watch stream cancelled mid-read leaves one), which nothing here depends on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING

#: Set by a SIGTERM/SIGINT that arrives before main() takes over the signals (importing Kopf and
#: the Kubernetes client takes ~0.5 s). Without it a pod deleted right after it started would die
#: by the signal (or with a KeyboardInterrupt traceback) instead of exiting 0.
EARLY_STOP = threading.Event()


def _stop_early(signum: int, _: FrameType | None) -> None:
    EARLY_STOP.set()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_early)
    signal.signal(signal.SIGINT, _stop_early)

import kopf  # noqa: E402  (after the early signal handlers, on purpose)

from kslim_operator.settings import Settings, SettingsError, load_settings  # noqa: E402

if TYPE_CHECKING:
    from kslim_operator.leader import LeaderElector

logger = logging.getLogger("kslim_operator")

#: After a stop request: how long Kopf may take at most, and how long after our cleanup handler.
STOP_DEADLINE_SECONDS = 10.0
STOP_AFTER_CLEANUP_SECONDS = 0.5


class _StandbyHealth(BaseHTTPRequestHandler):
    """A standby is alive and ready (it must not block rollouts); Kopf's probe takes over once it leads."""

    def do_GET(self) -> None:
        body = b'{"standby": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _wait(events: Sequence[threading.Event], timeout: float | None = None) -> None:
    """Until one of `events` is set (or `timeout`), in short waits so that signal handlers run."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not any(e.is_set() for e in events):
        left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
        if left <= 0:
            return
        events[0].wait(left)


def _lead(settings: Settings, stop: threading.Event) -> LeaderElector | None:
    """Block until this replica holds the Lease; None if asked to stop first.

    The campaign runs on a daemon thread and this one only waits for it or for a signal, so a
    SIGTERM stops a standby at once even while a Lease request hangs on an unresponsive API server."""
    from kslim_operator.kube import load_api_client
    from kslim_operator.leader import LeaderElector

    standby = None
    if settings.health_port:
        standby = ThreadingHTTPServer(("0.0.0.0", settings.health_port), _StandbyHealth)
        threading.Thread(target=standby.serve_forever, name="kslim-standby-health", daemon=True).start()
    elector = LeaderElector(
        load_api_client(2),
        namespace=settings.lease_namespace(),
        name=settings.leader_election_name,
        identity=settings.identity,
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
    )
    acquired, ended = threading.Event(), threading.Event()

    def campaign() -> None:
        if elector.acquire(stop):
            acquired.set()
        ended.set()

    threading.Thread(target=campaign, name="kslim-lease-campaign", daemon=True).start()
    try:
        _wait([stop, ended])
    finally:
        if standby is not None:
            standby.shutdown()
            standby.server_close()
    if stop.is_set():
        if acquired.is_set():
            elector.release()
        return None
    return elector


class KopfThread:
    """`kopf.operator` on its own event loop in a daemon thread, stopped through its stop flag."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.memo = kopf.Memo(stopped=threading.Event())  # set by the cleanup handler
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._requested = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flag: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="kopf", daemon=True)

    def start(self) -> None:
        if sys.getprofile() is not None:
            # Under `python -m cProfile` (bench/operator.py --profile), which sees only the main
            # thread: run Kopf right here, until a signal stops it.
            self._run()
        else:
            self.thread.start()

    def stop(self) -> None:
        self._requested.set()
        loop, flag = self._loop, self._flag
        if loop is not None and flag is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: Kopf is done anyway
                loop.call_soon_threadsafe(flag.set)

    def _run(self) -> None:
        try:
            asyncio.run(self._operator())
        except BaseException as error:
            self.error = error
            logger.exception("Kopf stopped with an error")
        finally:
            self.done.set()

    async def _operator(self) -> None:
        self._flag = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._requested.is_set():
            self._flag.set()
        port = self.settings.health_port
        await kopf.operator(
            standalone=True,
            clusterwide=self.settings.clusterwide,
            namespaces=self.settings.namespaces,
            liveness_endpoint=f"http://0.0.0.0:{port}/healthz" if port else None,
            memo=self.memo,
            stop_flag=self._flag,
        )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop, lost = threading.Event(), threading.Event()
    operator = KopfThread(settings)

    def on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()
        operator.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if EARLY_STOP.is_set():
        logger.info("asked to stop while starting; exiting before leader election")
        return 0

    elector: LeaderElector | None = None
    if settings.leader_election:
        elector = _lead(settings, stop)
        if elector is None:
            return 0

        def on_lost() -> None:
            logger.error("leader election: lost the Lease; stopping so that only one replica acts")
            lost.set()
            stop.set()
            operator.stop()

        elector.start_renewing(on_lost)

    import kslim_operator.handlers  # noqa: F401  (registers the handlers)

    try:
        operator.start()
        _wait([stop, operator.done])
        operator.stop()
        _wait([operator.done, operator.memo.stopped], STOP_DEADLINE_SECONDS)
        if not operator.done.is_set():
            _wait([operator.done], STOP_AFTER_CLEANUP_SECONDS if operator.memo.stopped.is_set() else 0)
    finally:
        if elector is not None:
            elector.stop()
            if not lost.is_set():
                elector.release()
    return 1 if lost.is_set() or operator.error is not None else 0


def exit_now(code: int) -> None:
    """End the process without interpreter finalization: daemon threads may still be inside an API
    call or Kopf's last waits, and tearing the interpreter (and OpenSSL) down under them can abort
    the process. Everything that matters (the Lease, the logs) is done or flushed by now."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    if sys.getprofile() is not None:
        sys.exit(code)  # under `python -m cProfile` (bench/operator.py --profile): let it write its stats
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
