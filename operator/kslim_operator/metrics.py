"""Prometheus metrics (prometheus-client), named by the Prometheus rules (base units, `_total`).

Counters and histograms are updated on transitions; jobs by phase and the per-job gauges are
computed at scrape time from the operator's index of CompressionJobs, so a deleted CR's series
disappear with it and a restarted operator exports finished jobs' figures again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from kslim_api.contract import Phase
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kslim_operator import __version__
from kslim_operator.summary import JobSummary

PHASES = tuple(phase.value for phase in Phase)
JOB_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
STAGE_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200)


class JobsCollector(Collector):
    """Scrape-time gauges from the index of CompressionJobs."""

    def __init__(self, source: Callable[[], Iterable[JobSummary]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        jobs = list(self.source())
        by_phase = GaugeMetricFamily("kslim_jobs", "CompressionJobs by phase.", labels=["phase"])
        counts = dict.fromkeys(PHASES, 0)
        for job in jobs:
            counts[job.phase] = counts.get(job.phase, 0) + 1
        for phase, n in sorted(counts.items()):
            by_phase.add_metric([phase], n)
        yield by_phase

        labels = ["namespace", "name"]
        ap = GaugeMetricFamily(
            "kslim_job_ap", "COCO box AP of the job's model (fraction, 0-1).", labels=[*labels, "model"]
        )
        latency = GaugeMetricFamily(
            "kslim_job_latency_seconds",
            "Median (p50) inference latency per batch.",
            labels=[*labels, "model", "precision"],
        )
        speedup = GaugeMetricFamily(
            "kslim_job_speedup_ratio", "Baseline latency / compressed latency.", labels=labels
        )
        gflops = GaugeMetricFamily(
            "kslim_job_gflops_ratio", "Compressed GFLOPs / baseline GFLOPs.", labels=labels
        )
        progress = GaugeMetricFamily("kslim_job_progress_ratio", "Whole-job progress (0-1).", labels=labels)
        attempts = GaugeMetricFamily(
            "kslim_job_attempts", "Pods started for the job (1 + retries).", labels=labels
        )
        for job in jobs:
            key = [job.namespace, job.name]
            if job.baseline_ap is not None:
                ap.add_metric([*key, "baseline"], job.baseline_ap)
            if job.result_ap is not None:
                ap.add_metric([*key, "result"], job.result_ap)
            for model, precision, p50_ms in job.latency_ms:
                latency.add_metric([*key, model, precision], p50_ms / 1000.0)
            if job.speedup is not None:
                speedup.add_metric(key, job.speedup)
            if job.gflops_ratio is not None:
                gflops.add_metric(key, job.gflops_ratio)
            if job.progress_percent is not None:
                progress.add_metric(key, job.progress_percent / 100.0)
            if job.attempts is not None:
                attempts.add_metric(key, job.attempts)
        yield from (ap, latency, speedup, gflops, progress, attempts)


class Metrics:
    """The operator's metrics in their own registry."""

    def __init__(self, source: Callable[[], Iterable[JobSummary]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.created = Counter("kslim_jobs_created", "Jobs (ConfigMap + batch/v1 Job) created.", registry=r)
        self.succeeded = Counter("kslim_jobs_succeeded", "CompressionJobs that succeeded.", registry=r)
        self.failed = Counter(
            "kslim_jobs_failed", "CompressionJobs that failed, by reason.", ["reason"], registry=r
        )
        self.retries = Counter("kslim_job_retries", "Attempts started after a failed attempt.", registry=r)
        self.job_duration = Histogram(
            "kslim_job_duration_seconds",
            "Time from Job creation to Succeeded/Failed.",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "kslim_stage_duration_seconds",
            "Time a runner stage took, as seen from its progress lines.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "kslim_reconcile_errors",
            "Reconcile passes that failed and will be retried, by kind.",
            ["kind"],
            registry=r,
        )
        self.status_patches = Counter("kslim_status_patches", "Status patches sent.", registry=r)
        self.info = Gauge("kslim_operator_info", "The operator's version.", ["version"], registry=r)
        self.info.labels(version=__version__).set(1)
        self.ready = Gauge(
            "kslim_operator_ready", "1 once the operator has started and is acting.", registry=r
        )
        self.watched = Gauge(
            "kslim_operator_active_jobs", "CompressionJobs the operator is driving now.", registry=r
        )
        if source is not None:
            r.register(JobsCollector(source))
