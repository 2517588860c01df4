"""Operator-wide state kept in Kopf's memo: settings, the API client, metrics, wake-ups."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kslim_operator.kube import Kube
from kslim_operator.metrics import Metrics
from kslim_operator.queue import Key, QueueEntry
from kslim_operator.settings import Settings
from kslim_operator.summary import JobSummary
from kslim_operator.views import JobView, PodView

#: Kopf's read-only index type is a Mapping of keys to collections of values.
IndexOf = Mapping[Any, Iterable[Any]]


@dataclass
class OperatorState:
    settings: Settings
    kube: Kube
    metrics: Metrics
    jobs: IndexOf = field(default_factory=dict)
    pods: IndexOf = field(default_factory=dict)
    cjs: IndexOf = field(default_factory=dict)
    pokes: dict[Key, asyncio.Event] = field(default_factory=dict)
    queued: set[Key] = field(default_factory=set)
    _seq: dict[str, int] = field(default_factory=dict)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count())

    # ---- wake-ups: a daemon sleeps until its job's objects change (or its timer is due)

    def poke(self, key: Key) -> None:
        event = self.pokes.get(key)
        if event is not None:
            event.set()

    def poke_queued(self) -> None:
        """A slot may have been freed: wake every waiting job (each decides for itself)."""
        for key in list(self.queued):
            self.poke(key)

    def forget(self, key: Key) -> None:
        self.pokes.pop(key, None)
        self.queued.discard(key)

    # ---- queue order

    def seq_of(self, uid: str) -> int:
        """The order this operator first saw a CompressionJob in (ties of creationTimestamp)."""
        if uid not in self._seq:
            self._seq[uid] = next(self._counter)
        return self._seq[uid]

    def forget_seq(self, uid: str) -> None:
        self._seq.pop(uid, None)

    # ---- views over the indexes

    def summaries(self) -> Iterator[JobSummary]:
        for store in list(self.cjs.values()):
            yield from list(store)

    def job_of(self, key: Key) -> JobView | None:
        views = [v for v in self.jobs.get(key, ()) if isinstance(v, JobView)]
        return views[0] if views else None

    def pods_of(self, key: Key) -> list[PodView]:
        return [p for p in self.pods.get(key, ()) if isinstance(p, PodView)]

    def holding(self) -> set[Key]:
        """Jobs counted against maxConcurrentJobs (Kueue's are not)."""
        out = set()
        for key, store in list(self.jobs.items()):
            if any(isinstance(v, JobView) and v.holds_slot and not v.kueue for v in store):
                out.add(key)
        return out

    def queue_entries(self) -> list[QueueEntry]:
        return [
            QueueEntry(key=s.key, created=s.created, seq=self._seq.get(s.uid, 0), wants_to_run=s.wants_to_run)
            for s in self.summaries()
        ]
