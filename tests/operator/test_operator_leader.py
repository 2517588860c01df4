"""Leader election decisions: a standby waits out a silent holder on its own clock."""

from __future__ import annotations

from kslim_operator.leader import LeaseRecord, Observed, can_take


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
