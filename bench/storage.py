"""Reading a dataset from the local S3 server (MinIO) vs a plain file copy of the same bytes.

    PYTHONPATH=tests python bench/storage.py [--mb 300] [--files 300,3000] [--rounds 3]
    (or: make bench-storage)

Uploads --mb MB of random bytes (like compressed images) three ways: one object (weights-like), and
for each --files count a prefix of that many objects. Each round times, side by side, the plain copy
of the same bytes on the local disk (shutil.copyfile / copytree) and the runner's download of them
into an empty cache (kslim_runner.storage, the code a job runs), after a sync, outside the timed
part. Before each round the previous round's copies are deleted and the bench waits --settle seconds:
on ext4 without a journal (the dev VM's) a freed inode counts as recently deleted for a minute and
the allocator scans past it, which made file creation after a round of deletions up to 3x slower
at random (and keeping every round's output instead made later rounds slow as memory filled).

Printed: the best round of each side, the S3 / copy ratio of the bests and of the median round,
each round's times (the machine is shared), and the CPU seconds the runner and the S3 server spent
in the best read (on one machine they share the cores). Goal (issue 20): S3 within 2x of the plain
copy. Needs `make s3server`, and the test tools (tests/support, for the S3 server) on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import kslim_runner  # noqa: F401  (must precede paddle)
from kslim_runner.api import S3Fetcher, S3Settings

try:
    from support.s3server import S3Server
except ModuleNotFoundError as error:  # the test tools are not a package of their own
    raise SystemExit(
        "bench/storage.py needs the test tools: PYTHONPATH=tests python bench/storage.py"
    ) from error


def server_cpu(pid: int) -> float:
    """CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], object], pid: int) -> tuple[float, float, float]:
    """(seconds, this process's CPU seconds, the S3 server's CPU seconds) of fn()."""
    c0, s0, t0 = os.times(), server_cpu(pid), time.perf_counter()
    fn()
    t, c1, s1 = time.perf_counter() - t0, os.times(), server_cpu(pid)
    return t, c1.user - c0.user + c1.system - c0.system, s1 - s0


def settled() -> None:
    """Writes dirty pages back, so that neither side pays for the other's writes."""
    os.sync()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--files", default="300,3000", help="object counts of the folder cases")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=65, help="seconds to wait after deleting a round")
    args = ap.parse_args()
    counts = [int(n) for n in args.files.split(",") if n]
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="kslim-bench-s3-"))
    try:
        cases = []  # (label, local source, s3 uri)
        one = work / "src" / "one.bin"
        one.parent.mkdir(parents=True)
        with open(one, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1_000_000))
        cases.append((f"1 object of {args.mb} MB", one, "s3://bench/one.bin"))
        for n in counts:
            src = work / "src" / f"set{n}"
            src.mkdir()
            per = args.mb * 1_000_000 // n
            for i in range(n):
                (src / f"{i:05d}.jpg").write_bytes(os.urandom(per))
            cases.append((f"{n} objects of {per / 1000:g} kB", src, f"s3://bench/set{n}/"))
        with S3Server(data_dir=work / "minio") as s3:
            s3.make_bucket("bench")
            s3.client().fput_object("bench", "one.bin", str(one))
            for n in counts:
                s3.upload_tree(work / "src" / f"set{n}", "bench", f"set{n}")
            os.environ.update(s3.env())
            settings = S3Settings(endpoint=s3.endpoint, path_style=True)
            pid = s3.proc.pid if s3.proc else 0
            copies: dict[str, list[float]] = {label: [] for label, _, _ in cases}
            reads: dict[str, list[tuple[float, float, float]]] = {label: [] for label, _, _ in cases}
            for _ in range(args.rounds):
                shutil.rmtree(work / "out", ignore_errors=True)
                settled()
                time.sleep(args.settle)
                for i, (label, src, uri) in enumerate(cases):
                    out = work / "out" / str(i)
                    copy = shutil.copytree if src.is_dir() else shutil.copyfile
                    out.mkdir(parents=True)
                    settled()
                    copies[label].append(timed(lambda: copy(src, out / "copy"), pid)[0])  # noqa: B023
                    os.environ["KSLIM_CACHE_DIR"] = str(out / "cache")
                    settled()
                    reads[label].append(timed(lambda: S3Fetcher(settings).fetch(uri, "bench"), pid))  # noqa: B023
        report(args, cases, copies, reads, load_before)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    args: argparse.Namespace,
    cases: list[tuple[str, Path, str]],
    copies: dict[str, list[float]],
    reads: dict[str, list[tuple[float, float, float]]],
    load_before: tuple[float, float, float],
) -> None:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    load = "/".join(f"{x:.1f}" for x in load_before), "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"{platform.machine()} {cpu}, {os.cpu_count()} cores; load average (1/5/15 min) {load[0]} before, "
        f"{load[1]} after; best of {args.rounds} rounds"
    )
    print(
        "| data | plain copy s | S3 read s | S3 MB/s | S3 / copy (bests) | S3 / copy (median round) "
        "| each round: S3 s / copy s | runner CPU s | S3 server CPU s |"
    )
    print("| :-- | --: | --: | --: | --: | --: | :-- | --: | --: |")
    for label, _, _ in cases:
        c, r = copies[label], reads[label]
        b = min(r)
        ratios = sorted(x[0] / y for x, y in zip(r, c, strict=True))
        rounds = ", ".join(f"{x[0]:.2f}/{y:.2f}" for x, y in zip(r, c, strict=True))
        print(
            f"| {label} | {min(c):.2f} | {b[0]:.2f} | {args.mb / b[0]:.0f} | {b[0] / min(c):.2f}x "
            f"| {ratios[len(ratios) // 2]:.2f}x | {rounds} | {b[1]:.2f} | {b[2]:.2f} |"
        )


if __name__ == "__main__":
    sys.exit(main())
