"""Unpack a .tar, .tar.gz/.tgz or .zip safely, into the cache, all or nothing.

Refused (exit 2, nothing extracted is used): members whose path is absolute or has a `..` segment,
links and device files (a link is how a later member writes outside the folder), and bombs: more
than $KSLIM_ARCHIVE_MAX_BYTES (default 256 GiB) expanded, or more than 64 MiB expanded at a ratio
above $KSLIM_ARCHIVE_MAX_RATIO (default 200) to the archive's size. Sizes are counted on the bytes
written, not only the headers, which can lie. Extraction goes to a temp folder renamed into place
when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from kslim_runner.errors import UserError
from kslim_runner.storage import cache
from kslim_runner.storage.checksum import CHUNK

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
MAX_BYTES_ENV = "KSLIM_ARCHIVE_MAX_BYTES"
MAX_RATIO_ENV = "KSLIM_ARCHIVE_MAX_RATIO"
RATIO_FLOOR = 64 << 20  # small archives of highly compressible files (annotations) are fine


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


@dataclass
class Member:
    name: str
    kind: str  # "file", "dir" or "other"
    size: int
    open: object  # () -> IO[bytes] for files


class Budget:
    def __init__(self, archive: Path, source: str, what: str) -> None:
        self.packed = max(archive.stat().st_size, 1)
        self.max_bytes = int(os.environ.get(MAX_BYTES_ENV) or 256 << 30)
        self.max_ratio = float(os.environ.get(MAX_RATIO_ENV) or 200)
        self.total = 0
        self.source, self.what = source, what

    def add(self, n: int) -> None:
        self.total += n
        ratio = self.total / self.packed
        if self.total > self.max_bytes or (self.total > RATIO_FLOOR and ratio > self.max_ratio):
            raise UserError(
                f"{self.what}: {self.source} expands to more than {self.total} bytes ({ratio:.0f}x its size; "
                f"limits {self.max_bytes} bytes, {self.max_ratio:.0f}x): refusing a likely archive bomb; "
                f"repack the data or raise {MAX_BYTES_ENV}/{MAX_RATIO_ENV}",
                reason="UnsafeArchive",
            )


def member_path(name: str, source: str, what: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UserError(
            f"{what}: {source} has a member {name!r} that points outside its folder: repack it with relative "
            "paths (nothing was extracted)",
            reason="UnsafeArchive",
        )
    return p


def _tar_members(tf: tarfile.TarFile) -> Iterator[Member]:
    for m in tf:
        kind = "file" if m.isreg() else "dir" if m.isdir() else "other"
        yield Member(m.name, kind, m.size, lambda m=m: tf.extractfile(m))


def _zip_members(zf: zipfile.ZipFile) -> Iterator[Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = "dir" if info.is_dir() else "other" if stat.S_ISLNK(mode) else "file"
        yield Member(info.filename, kind, info.file_size, lambda i=info: zf.open(i))


def _extract(members: Iterator[Member], dest: Path, budget: Budget) -> None:
    for m in members:
        rel = member_path(m.name, budget.source, budget.what)
        if m.kind == "other":
            raise UserError(
                f"{budget.what}: {budget.source} holds {m.name!r}, a link or device file: repack it with "
                "regular files only (nothing was extracted)",
                reason="UnsafeArchive",
            )
        out = dest.joinpath(*rel.parts)
        if m.kind == "dir":
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        src: IO[bytes] = m.open()  # type: ignore[operator]
        with src, open(out, "wb") as f:
            while chunk := src.read(CHUNK):
                budget.add(len(chunk))
                f.write(chunk)


def extract(archive: Path, source: str, what: str) -> Path:
    """The folder the archive unpacks to (its single top-level folder, if it has only that)."""
    dest = archive.with_name(archive.name + ".d")
    st = archive.stat()
    signature = [st.st_size, st.st_mtime_ns]  # a re-downloaded archive is unpacked again
    meta = cache.read_marker(dest)
    if meta is None or meta.get("archive") != signature:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        budget = Budget(archive, source, what)
        try:
            if archive.name.lower().endswith(".zip"):
                with zipfile.ZipFile(archive) as zf:
                    _extract(_zip_members(zf), tmp, budget)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    _extract(_tar_members(tf), tmp, budget)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(
                f"{what}: {source} is not a readable archive ({type(e).__name__}: {e}): check the file",
                reason="BadArchive",
            ) from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        cache.write_marker(dest, {"source": source, "bytes": budget.total, "archive": signature})
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
