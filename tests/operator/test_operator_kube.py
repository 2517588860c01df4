"""The operator's API calls against the real API server: connections are reused, not leaked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kslim_operator.kube import Kube, load_api_client

pytestmark = pytest.mark.cluster

CALLS = 30
WORKERS = 4


def test_raw_calls_hand_their_connection_back_to_the_pool(
    namespace: str, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A raw response left unread keeps its connection; every later call then opened a new TLS
    # connection (in a 200-job burst that handshaking was the operator's biggest CPU cost).
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    kube = Kube(load_api_client(WORKERS), workers=WORKERS)

    async def calls() -> list[list[str]]:
        cms = [
            kube.create_configmap(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i}", "namespace": namespace},
                }
            )
            for i in range(CALLS)
        ]
        await asyncio.gather(*cms)
        # Not cached: a different claim name each time, so every call reaches the server.
        return list(
            await asyncio.gather(*(kube.missing_claims(namespace, [f"claim-{i}"]) for i in range(CALLS)))
        )

    try:
        missing = asyncio.run(calls())
        assert missing == [[f"claim-{i}"] for i in range(CALLS)]
        opened = sum(
            pool.num_connections for pool in kube.api.rest_client.pool_manager.pools._container.values()
        )
        assert 1 <= opened <= WORKERS, (
            f"{opened} connections opened for {2 * CALLS} calls on {WORKERS} threads"
        )
    finally:
        kube.close()
