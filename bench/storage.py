"""Reading a dataset from the local S3 server (MinIO) vs a plain file copy of the same bytes.

    python bench/storage.py [--mb 300] [--files 300]

Uploads --files objects totalling --mb MB (random bytes, like compressed images) under one prefix,
then times (1) the runner's prefix download into an empty cache (kslim_runner.storage, the code a
job runs), (2) a single object of the same size (weights-like), and (3) shutil.copytree of the same
files on the local disk. Each is run --rounds times; the best round is printed (the machine is
shared). Goal (issue 20): S3 within 2x of the plain copy. Needs `make s3server`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import kslim_runner  # noqa: E402,F401  (must precede paddle)
from kslim_runner.storage.s3 import S3Settings  # noqa: E402
from kslim_runner.storage.s3_fetch import S3Fetcher  # noqa: E402
from support.s3server import S3Server  # noqa: E402


def best(rounds: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kslim-bench-s3-"))
    try:
        src = work / "src"
        src.mkdir()
        per = args.mb * 1_000_000 // args.files
        for i in range(args.files):
            (src / f"{i:05d}.jpg").write_bytes(os.urandom(per))
        (work / "one.bin").write_bytes(b"".join(p.read_bytes() for p in sorted(src.iterdir())))
        total = per * args.files
        with S3Server(data_dir=work / "minio") as s3:
            s3.make_bucket("bench")
            s3.upload_tree(src, "bench", "set")
            s3.client().fput_object("bench", "one.bin", str(work / "one.bin"))
            os.environ.update(s3.env())
            settings = S3Settings(endpoint=s3.endpoint, path_style=True)

            def fetch(uri: str) -> None:
                cache = work / "cache"
                shutil.rmtree(cache, ignore_errors=True)
                os.environ["KSLIM_CACHE_DIR"] = str(cache)
                S3Fetcher(settings).fetch(uri, "bench")

            def copy() -> None:
                shutil.rmtree(work / "copy", ignore_errors=True)
                shutil.copytree(src, work / "copy")

            t_prefix = best(args.rounds, lambda: fetch("s3://bench/set/"))
            t_object = best(args.rounds, lambda: fetch("s3://bench/one.bin"))
            t_copy = best(args.rounds, copy)
        mb = total / 1e6
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
            f"{args.files} files, {mb:.0f} MB; best of {args.rounds}"
        )
        print("| read | seconds | MB/s | vs plain copy |")
        print("| :-- | --: | --: | --: |")
        for name, t in [
            (f"S3 prefix ({args.files} objects, 8 parallel)", t_prefix),
            ("S3 single object (one stream)", t_object),
            ("plain file copy (shutil.copytree)", t_copy),
        ]:
            print(f"| {name} | {t:.2f} | {mb / t:.0f} | {t / t_copy:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
