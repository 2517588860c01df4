"""maxConcurrentJobs: which CompressionJobs may run now (pure).

Every CompressionJob gets its Job at once (suspended while it waits), so `kubectl get jobs` shows
the whole queue and an admitted job starts with one patch. A job holds a slot while its Job is
unsuspended and unfinished; free slots go to waiting jobs in creation order (creationTimestamp,
then the order the operator first saw them, then name). Jobs with a Kueue queue label are
Kueue's to admit and are not counted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class QueueEntry:
    key: Key
    created: str
    seq: int
    wants_to_run: bool
    """Not finished, not suspended by its spec, valid, and not Kueue's."""

    @property
    def order(self) -> tuple[str, int, str, str]:
        return (self.created, self.seq, self.key[0], self.key[1])


def admitted(entries: Iterable[QueueEntry], holding: set[Key], limit: int) -> set[Key]:
    """Keys that may run: those already holding a slot, plus the first waiting ones that fit."""
    wanting = [e for e in entries if e.wants_to_run]
    if limit <= 0:
        return {e.key for e in wanting}
    waiting = sorted((e for e in wanting if e.key not in holding), key=lambda e: e.order)
    free = max(limit - len(holding), 0)
    return {e.key for e in wanting if e.key in holding} | {e.key for e in waiting[:free]}


def is_admitted(key: Key, entries: Iterable[QueueEntry], holding: set[Key], limit: int) -> bool:
    return key in holding or key in admitted(entries, holding, limit)
