"""The kslim operator: CompressionJob -> ConfigMap + batch/v1 Job -> status, events and metrics.

Layout (one job per module; handlers thin, decisions pure). What the runner writes (exit codes,
reasons, progress lines, the termination message, mount paths, env names) is read through
``kslim_api.contract``.

- ``settings``     operator settings from ``KSLIM_OPERATOR_*`` environment variables (validated)
- ``names``        label keys, annotation prefix, finalizer, child object names
- ``storage``      pvc:// URIs -> volumes and mounts
- ``builders``     the ConfigMap and the batch/v1 Job (pure ``build_*``)
- ``views``        compact, typed views of Job and Pod objects (what the indexes keep)
- ``conditions``   metav1.Condition helpers (lastTransitionTime changes only on flips)
- ``observe``      Job/Pod state -> what the CompressionJob is doing (phase, reason, message)
- ``queue``        maxConcurrentJobs admission in creation order
- ``status``       the desired status and the minimal merge patch towards it
- ``events``       which transitions a user hears about
- ``metrics``      Prometheus metrics
- ``leader``       Lease-based leader election (two replicas never both act)
- ``kube``         the only module that talks to the API server (besides Kopf itself)
- ``reconciler``   one reconcile pass for one CompressionJob: inputs -> plan -> API calls
- ``handlers``     the Kopf handlers (registration only)
"""

__version__ = "0.1.0"
