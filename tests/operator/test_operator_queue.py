"""maxConcurrentJobs: the first jobs in creation order run, the rest wait their turn."""

from __future__ import annotations

from kslim_operator.queue import QueueEntry, admitted, is_admitted


def _entries(n: int, wants: bool = True) -> list[QueueEntry]:
    return [
        QueueEntry(
            key=("ns", f"job-{i:02d}"), created=f"2026-01-01T00:00:{i % 2:02d}Z", seq=i, wants_to_run=wants
        )
        for i in range(n)
    ]


def test_no_limit_admits_everyone_who_wants_to_run() -> None:
    entries = [*_entries(3), QueueEntry(("ns", "held"), "2026-01-01T00:00:00Z", 99, wants_to_run=False)]
    assert admitted(entries, set(), 0) == {("ns", "job-00"), ("ns", "job-01"), ("ns", "job-02")}


def test_free_slots_go_in_creation_order() -> None:
    entries = _entries(10)
    got = admitted(entries, set(), 3)
    # created second 0: job-00, 02, 04, ...; second 1: job-01, 03, ... -> the first three of second 0
    assert got == {("ns", "job-00"), ("ns", "job-02"), ("ns", "job-04")}


def test_holding_jobs_keep_their_slots() -> None:
    entries = _entries(10)
    holding = {("ns", "job-09"), ("ns", "job-07")}
    got = admitted(entries, holding, 3)
    assert got == holding | {("ns", "job-00")}
    assert not is_admitted(("ns", "job-02"), entries, holding, 3)
    assert is_admitted(("ns", "job-07"), entries, holding, 3)


def test_over_the_limit_admits_nobody_new() -> None:
    entries = _entries(5)
    holding = {("ns", "job-00"), ("ns", "job-01"), ("ns", "job-02")}
    assert admitted(entries, holding, 2) == holding
