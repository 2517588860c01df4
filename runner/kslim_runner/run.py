"""`kslim run FILE [--output DIR]`: validate the job, run its pipeline (resuming a killed run),
print the table, write the termination message, and return the contract's exit code."""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from kslim_api.contract import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_QUALITY_GATE,
    HTTP_SCHEMES,
    OUTPUT_URI_ENV,
    PVC_ROOT,
    PVC_ROOT_ENV,
    S3_SCHEME,
    SCRATCH_DIR,
    Outcome,
    Reason,
    Stage,
    TerminationMessage,
    parse_pvc_uri,
    redact,
)

from kslim_runner.errors import KslimError, UserError

DEFAULT_LOCAL_OUTPUT = "output"


def output_location(job: Any, job_dir: Path, output: str | None) -> tuple[Path, str | None]:
    """(local folder, the URI artifacts are reported under). --output wins; else spec.output.uri with
    the job's name appended; else ./output/<name>. In a pod, --output is the mount of
    spec.output.uri/<name>, so artifacts are reported under that URI."""
    from kslim_runner.uris import pvc_root, resolve_uri

    name = job.metadata.name
    spec_uri = None if job.spec.output is None else f"{job.spec.output.uri.rstrip('/')}/{name}"
    if output is not None:
        # KSLIM_OUTPUT_URI: set by the operator on runner pods (also where no Service env exists)
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(OUTPUT_URI_ENV))
        return Path(output).absolute(), spec_uri if in_pod else None
    if spec_uri is not None and spec_uri.startswith(S3_SCHEME):
        # Staged in a local folder, uploaded when the job ends (storage.publish).
        return (Path.cwd() / DEFAULT_LOCAL_OUTPUT / name).absolute(), spec_uri
    if spec_uri is not None and spec_uri.startswith(HTTP_SCHEMES):
        raise UserError(
            f"spec.output.uri {job.spec.output.uri}: http(s):// cannot be written to; use s3:// or pvc://",
            reason=Reason.INVALID_SPEC,
        )
    if spec_uri is not None:
        local = resolve_uri(spec_uri, job_dir, what="spec.output.uri")
        ref = parse_pvc_uri(spec_uri)
        if ref is not None:
            claim = pvc_root() / ref.claim
            if not claim.is_dir():
                raise UserError(
                    f"spec.output.uri {job.spec.output.uri}: claim folder {claim} does not exist (claims are "
                    f"mounted under ${PVC_ROOT_ENV}, default {PVC_ROOT}); set {PVC_ROOT_ENV} or pass "
                    "--output",
                    reason=Reason.OUTPUT_NOT_WRITABLE,
                )
        return local, None
    return (Path.cwd() / DEFAULT_LOCAL_OUTPUT / name).absolute(), None


def ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".kslim-write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(
            f"output folder {out} is not writable ({e.strerror or e}); choose another --output or fix the "
            "volume's permissions",
            reason=Reason.OUTPUT_NOT_WRITABLE,
        ) from e


def _load(file: str) -> Any:
    from kslim_api import InvalidJobError, load_job

    try:
        return load_job(file)
    except InvalidJobError as e:
        where = e.source or file
        raise UserError(f"{where}: invalid CompressionJob: {e}", reason=Reason.INVALID_SPEC) from e


def _setup_context(file: str, output: str | None) -> Any:
    from kslim_runner.device import decide_device, probe
    from kslim_runner.pipeline.context import RunContext, spec_hash
    from kslim_runner.pipeline.state import PipelineState, load_state

    job = _load(file)
    job_dir = Path(file).absolute().parent
    out, out_uri = output_location(job, job_dir, output)
    ensure_writable(out)
    compiled, gpus = probe()
    decision = decide_device(job.spec.benchmark.device, compiled, gpus)
    h = spec_hash(job)
    state = load_state(out)
    if state is not None and state.spec_hash != h:
        print(f"kslim: {out} holds a run of a different spec; starting over", flush=True)
        shutil.rmtree(out / "stages", ignore_errors=True)
        shutil.rmtree(out / "models", ignore_errors=True)
        state = None
    if state is None:
        state = PipelineState(spec_hash=h)
    return RunContext(
        job=job,
        job_dir=job_dir,
        out=out,
        out_uri=out_uri,
        device=decision,
        state=state,
        steps=job.spec.resolved_steps(),
    )


def build_pipeline(ctx: Any) -> Any:
    from kslim_runner.pipeline.baseline import BaselineStage
    from kslim_runner.pipeline.benchmark import BenchmarkStage
    from kslim_runner.pipeline.evaluate import EvaluateStage
    from kslim_runner.pipeline.export import ExportStage
    from kslim_runner.pipeline.methods import check_methods
    from kslim_runner.pipeline.prepare import PrepareStage
    from kslim_runner.pipeline.report import ReportStage
    from kslim_runner.pipeline.stage import Pipeline
    from kslim_runner.pipeline.steps import StepStage

    check_methods([s.method for s in ctx.steps])
    return Pipeline(
        [
            PrepareStage(),
            BaselineStage(),
            *[StepStage(i, s) for i, s in enumerate(ctx.steps)],
            ExportStage(),
            EvaluateStage(),
            BenchmarkStage(),
            ReportStage(),
        ]
    )


def _fail(err: str, reason: str, stage: str | None, exit_code: int) -> int:
    from kslim_runner.report import termination

    err = redact(err)  # the message goes to the log, the termination message and the CR's status
    print(f"kslim: error: {err}", file=sys.stderr, flush=True)
    termination.write(TerminationMessage.failed(reason, err, stage))
    return exit_code


def run_command(file: str, output: str | None = None) -> int:
    """The whole job. Exit codes: 0 done, 1 internal, 2 user error, 3 quality gate, 4 device.

    In a multi-node job (KSLIM_NODES > 1, docs/multinode.md) worker 0 runs the job with every
    training across all workers, and the others follow (`_follow`)."""
    # again here: a caller (a test runner, an embedding program) may have reset the filters
    from kslim_runner.quiet import install_warnings

    install_warnings()
    from kslim_runner.train.nodes import Nodes

    try:
        nodes = Nodes.from_env()
    except KslimError as e:
        return _fail(e.summary, e.reason, "prepare", e.exit_code)
    if nodes is None:
        return _run(file, output)
    if not nodes.leader:
        return _follow(file, nodes)
    return _lead(file, output, nodes)


def _lead(file: str, output: str | None, nodes: Any) -> int:
    """Worker 0: the job as on one node, its trainings across all; "done" for the followers at the end."""
    from kslim_runner.train.nodes.leader import lead, step_down

    try:
        leader = lead(nodes)
    except OSError as e:
        msg = f"the hand-over server cannot listen on port {nodes.handover_port} ({e.strerror or e})"
        return _fail(msg, Reason.INTERNAL_ERROR, "prepare", EXIT_INTERNAL)
    print(
        f"kslim: {nodes.worker()} (the leader): hand-over on port {leader.server.port}, paddle's "
        f"rendezvous at {nodes.master}",
        flush=True,
    )
    code = EXIT_INTERNAL
    try:
        code = _run(file, output)
    finally:
        step_down(leader, code)
    return code


def _follow(file: str, nodes: Any) -> int:
    """Workers 1..N-1: the prepare stage in private scratch space (never the job's output, which a
    pvc:// output shares between pods), then the leader's training sessions; a short termination
    message, no report, no progress lines."""
    import tempfile

    from kslim_runner import progress
    from kslim_runner.report import termination
    from kslim_runner.train.nodes.follower import follow

    progress.silence()
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(OUTPUT_URI_ENV))
    root = Path(SCRATCH_DIR) if in_pod else None
    scratch = Path(tempfile.mkdtemp(prefix=f"kslim-worker{nodes.rank}-", dir=root))
    print(
        f"kslim: {nodes.worker()}: follows worker 0 at {nodes.handover_url}; work folder {scratch}",
        flush=True,
    )

    def prepare() -> Any:
        from kslim_runner.pipeline.prepare import PrepareStage
        from kslim_runner.pipeline.stage import Pipeline

        ctx = _setup_context(file, str(scratch))
        Pipeline([PrepareStage()]).run(ctx)
        return ctx.index("train")

    try:
        part = follow(nodes, prepare, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    line = part.summary(nodes)
    print(f"kslim: {line}", file=sys.stderr if part.exit_code else sys.stdout, flush=True)
    termination.write(part.message(nodes))
    return part.exit_code


def _run(file: str, output: str | None) -> int:
    stage: str | None = "prepare"
    pipeline = None
    try:
        ctx = _setup_context(file, output)
        import paddle

        from kslim_runner.device import use_cpu_threads

        paddle.set_device("gpu" if ctx.device.device == "gpu" else "cpu")
        use_cpu_threads()
        print(
            f"kslim: job {ctx.name}: output {ctx.out}; device {ctx.device.device} ({ctx.device.reason})",
            flush=True,
        )
        pipeline = build_pipeline(ctx)
        from kslim_runner.pipeline.steps import check_steps

        check_steps(ctx, ctx.steps)
        pipeline.run(ctx)
        _publish(ctx)
    except KslimError as e:
        if pipeline is not None and pipeline.current is not None:
            stage = pipeline.current.stage
        return _fail(e.summary, e.reason, stage, e.exit_code)
    except Exception as e:
        if pipeline is not None and pipeline.current is not None:
            stage = pipeline.current.stage
        traceback.print_exc(file=sys.stderr)
        msg = " ".join(f"{type(e).__name__}: {e}".split())[:1000]
        return _fail(f"internal error in stage {stage}: {msg}", Reason.INTERNAL_ERROR, stage, EXIT_INTERNAL)
    return _finish(ctx)


def _publish(ctx: Any) -> None:
    """Upload the output to spec.output's s3:// location (also when the quality gate failed: the
    artifacts are kept there as they are in a volume)."""
    if ctx.out_uri is None or not ctx.out_uri.startswith(S3_SCHEME):
        return
    from kslim_runner.storage.publish import publish
    from kslim_runner.storage.s3 import S3Settings

    publish(ctx.out, ctx.out_uri, S3Settings.from_spec(ctx.spec))


def _finish(ctx: Any) -> int:
    from kslim_runner.report import termination

    rep = ctx.state.done["report"]["result"]
    print(rep["table"], flush=True)
    print(f"kslim: report {ctx.out / 'report.md'}", flush=True)
    passed = rep["passed"]
    headline = rep["headline"]
    # MeasurementUnstable: the latency spread could not decide qualityGate.minSpeedup
    gate_reason = (headline.get("qualityGate") or {}).get("reason") or Reason.QUALITY_GATE_FAILED
    termination.write(
        TerminationMessage(
            outcome=Outcome.SUCCEEDED if passed else Outcome.FAILED,
            reason=Reason.COMPLETED if passed else gate_reason,
            message=rep["gateMessage"] or "completed; no quality gate set",
            stage=Stage.REPORT,
            baseline=headline.get("baseline"),
            result=headline.get("result"),
            delta=headline.get("delta"),
            quality_gate=headline.get("qualityGate"),
            artifacts=headline.get("artifacts") or {},
        )
    )
    if not passed:
        print(f"kslim: quality gate {rep['gateMessage']}", file=sys.stderr, flush=True)
        return EXIT_QUALITY_GATE
    return EXIT_OK
