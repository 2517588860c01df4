"""`python -m kslim_operator`: check the settings, take the Lease, then run Kopf.

Exit codes: 0 stopped cleanly; 1 leadership lost (the pod restarts and stands by); 2 bad settings.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import kopf

from kslim_operator.settings import Settings, SettingsError, load_settings

logger = logging.getLogger("kslim_operator")


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


def _lead(settings: Settings, stop: threading.Event, lost: threading.Event) -> object | None:
    """Block until this replica holds the Lease; None if asked to stop first."""
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
    try:
        if not elector.acquire(stop):
            return None
    finally:
        if standby is not None:
            standby.shutdown()
            standby.server_close()

    def on_lost() -> None:
        logger.error("leader election: lost the Lease; stopping so that only one replica acts")
        lost.set()
        stop.set()
        os.kill(os.getpid(), signal.SIGTERM)  # Kopf's own graceful stop

    elector.start_renewing(on_lost)
    return elector


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop, lost = threading.Event(), threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()

    elector = None
    if settings.leader_election:
        previous = signal.signal(signal.SIGTERM, on_signal), signal.signal(signal.SIGINT, on_signal)
        elector = _lead(settings, stop, lost)
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        if elector is None:
            return 0

    import kslim_operator.handlers  # noqa: F401  (registers the handlers)

    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    try:
        kopf.run(
            standalone=True,
            clusterwide=settings.clusterwide,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
        )
    finally:
        if elector is not None and not lost.is_set():
            elector.release()  # type: ignore[attr-defined]
    return 1 if lost.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
