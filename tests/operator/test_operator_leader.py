"""Leader election: a standby waits out a silent holder on its own clock; a stopping leader hands
the Lease back even when its last renewal races the release."""

from __future__ import annotations

import pytest
from kslim_operator.leader import LeaderElector, LeaseRecord, Observed, can_take
from kubernetes import client


def _rec(holder: str | None, renew: str = "t1", rv: str = "1") -> LeaseRecord:
    return LeaseRecord(
        holder=holder, duration_seconds=15, renew_time=renew, transitions=0, resource_version=rv
    )


def test_free_or_own_lease_can_be_taken() -> None:
    assert can_take(Observed(), None, "me", 0.0)
    assert can_take(Observed(), _rec(None), "me", 0.0)
    assert can_take(Observed(), _rec("me"), "me", 0.0)


def test_held_lease_is_taken_only_after_it_stayed_unchanged_for_its_duration() -> None:
    held = _rec("other")
    seen = Observed(held, 100.0)
    assert not can_take(seen, held, "me", 110.0)
    assert can_take(seen, held, "me", 115.0)
    renewed = _rec("other", renew="t2", rv="2")
    assert not can_take(seen, renewed, "me", 200.0)  # it changed: the holder is alive


@pytest.mark.cluster
def test_release_hands_the_lease_back_when_a_renewal_writes_first(
    kube_api: client.ApiClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def elector() -> LeaderElector:
        return LeaderElector(
            kube_api,
            namespace=namespace,
            name="kslim-operator",
            identity="me",
            lease_duration=15,
            renew_deadline=10,
            retry_period=2,
        )

    leader, renewal = elector(), elector()  # renewal: the renew thread's round already under way
    assert leader.try_acquire_or_renew()
    read, reads = leader._read, []

    def read_then_renewed(timeout: float = 10) -> client.V1Lease | None:
        lease = read(timeout)
        if not reads:
            assert renewal.try_acquire_or_renew()  # a write after our read: ours conflicts (409)
        reads.append(lease)
        return lease

    monkeypatch.setattr(leader, "_read", read_then_renewed)
    leader.release()
    assert len(reads) == 2  # the first write was refused, the second went through
    lease = client.CoordinationV1Api(kube_api).read_namespaced_lease("kslim-operator", namespace)
    assert lease.spec.holder_identity is None and lease.spec.lease_duration_seconds == 1
