"""s3:// objects, prefixes and PaddleDetection config trees into the local cache.

The cache mirrors the bucket (`<cache>/s3/<endpoint>/<bucket>/<key>`), so a prefix is a folder and
a config's relative `_BASE_` includes resolve there as they do in the bucket. An object whose cached
copy has a marker with the same ETag and size is not downloaded again; nor is a prefix whose folder
marker lists the same keys, ETags and sizes as the bucket, with every file there at its size.

A prefix is listed once, its objects are streamed PARALLEL at a time into a staging folder, and the
folder is renamed into place only when every one arrived: a failure of any object fails the fetch
and leaves no folder (nor marker) to be taken for a complete one. No per-object marker, rename or
fsync: the folder's single rename and marker give the same guarantee with one file created per
object instead of two and two renames (file creation is a good part of a 100 kB image's cost).
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import yaml

from kslim_runner.errors import UserError
from kslim_runner.storage import cache
from kslim_runner.storage.checksum import check_sha256, sha256_file
from kslim_runner.storage.s3 import S3_FAILURES, S3Settings, make_client, parse_s3_uri, storage_error
from kslim_runner.storage.s3_get import Getter

#: Objects downloaded at once: a remote store answers each in tens of milliseconds, so a folder of
#: images needs several in flight (on the 2-core dev machine 4-16 measure the same).
PARALLEL = 8


def safe_key(key: str, uri: str, what: str) -> str:
    """A key mirrored to a local path must stay inside the bucket's folder."""
    parts = key.rstrip("/").split("/")
    if key.startswith("/") or any(p in (".", "..") for p in parts):
        raise UserError(
            f"{what}: {uri} has a '.' or '..' path segment, which would leave the bucket's folder in the "
            "cache: rename the object",
            reason="UnsafeKey",
        )
    return key


class S3Fetcher:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.root = cache.cache_root() / "s3" / cache.key_of(settings.where)
        self._client: Any = None
        self._getter: Getter | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    @property
    def getter(self) -> Getter:
        with self._lock:  # one Getter: its connections are per thread, and workers ask at once
            if self._getter is None:
                self._getter = Getter(self.client, self.settings)
            return self._getter

    def local(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def _call(self, bucket: str, key: str, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except S3_FAILURES as e:
            raise storage_error(e, self.settings, bucket, key, what) from e

    # --- what a URI names ------------------------------------------------------------------------------
    def fetch(self, uri: str, what: str, sha256: str | None = None) -> Path:
        """The local copy of an object, or the folder of every object under a prefix."""
        bucket, key = parse_s3_uri(uri)
        if key == "" or key.endswith("/"):
            return self.fetch_prefix(bucket, key, what)
        safe_key(key, uri, what)
        from minio.error import S3Error

        try:
            info = self.client.stat_object(bucket, key)
        except S3Error as e:
            if e.code not in ("NoSuchKey", "ResourceNotFound"):
                raise storage_error(e, self.settings, bucket, key, what) from e
            return self.fetch_prefix(bucket, key + "/", what)  # a folder given without its slash
        except S3_FAILURES as e:
            raise storage_error(e, self.settings, bucket, key, what) from e
        return self.fetch_object(bucket, key, what, info.size, info.etag, sha256)

    def fetch_object(
        self, bucket: str, key: str, what: str, size: int, etag: str | None, sha256: str | None = None
    ) -> Path:
        uri = f"s3://{bucket}/{key}"
        target = self.local(bucket, safe_key(key, uri, what))
        meta = cache.read_marker(target)
        if meta and meta.get("etag") == etag and meta.get("size") == size and _is_file(target, size):
            if sha256 is not None:
                check_sha256(meta.get("sha256") or sha256_file(target), sha256, uri, what)
            return target
        tmp = cache.temp_path(target)
        try:
            # Hashing costs about a core-second per GB: only when the spec gives a digest to check.
            digest = self._get(bucket, key, tmp, what, size, sha256=sha256 is not None)
            if digest is not None:
                check_sha256(digest, sha256, uri, what)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        cache.write_marker(target, {"etag": etag, "size": size, "sha256": digest})
        return target

    def _get(
        self, bucket: str, key: str, dest: Path, what: str, size: int, sha256: bool = False
    ) -> str | None:
        """Streams one object to dest; its sha256 if asked."""
        try:
            got, digest = self.getter.get(bucket, key, dest, sha256=sha256)
        except S3_FAILURES as e:
            raise storage_error(e, self.settings, bucket, key, what) from e
        if got != size:  # the object changed since it was listed: the next attempt fetches it again
            raise storage_error(
                ConnectionError(f"got {got} of {size} bytes"), self.settings, bucket, key, what
            )
        return digest

    def fetch_prefix(self, bucket: str, prefix: str, what: str) -> Path:
        objects = self._call(
            bucket, prefix, what, lambda: list(self.client.list_objects(bucket, prefix, recursive=True))
        )
        files = [o for o in objects if not o.is_dir and not o.object_name.endswith("/")]
        if not files:
            raise UserError(
                f"{what}: s3://{bucket}/{prefix.rstrip('/')} is neither an object nor a prefix with objects: "
                "fix the key or upload the data",
                reason="DataNotFound",
            )
        for o in files:
            safe_key(o.object_name, f"s3://{bucket}/{o.object_name}", what)
        # What the folder must hold, as its marker records it (lists: JSON has no tuples).
        listing = {o.object_name[len(prefix) :]: [o.etag, o.size] for o in files}
        folder = self.local(bucket, prefix)
        with cache.locked(folder):
            if _complete(folder, listing):
                return folder
            cache.drop_marker(folder)  # from here until the new marker, the folder is not complete
            stage = cache.staging_dir(folder)
            try:
                self._get_all(bucket, prefix, listing, stage, what)
                cache.install_dir(stage, folder)
            finally:
                if stage.exists():
                    cache.remove(stage)
            cache.write_marker(folder, {"objects": listing})
        return folder

    def _get_all(
        self, bucket: str, prefix: str, listing: dict[str, list[Any]], stage: Path, what: str
    ) -> None:
        for d in {_under(stage, rel).parent for rel in listing}:
            d.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(PARALLEL) as pool:
            jobs = [
                pool.submit(self._get, bucket, prefix + rel, _under(stage, rel), what, size)
                for rel, (_, size) in listing.items()
            ]
            done, _ = wait(jobs, return_when=FIRST_EXCEPTION)
            failed = [j for j in jobs if j in done and j.exception() is not None]
            if failed:
                pool.shutdown(cancel_futures=True)  # queued objects are not fetched; running ones end
                failed[0].result()

    def fetch_config_tree(self, uri: str, what: str) -> Path:
        """A PaddleDetection config and, transitively, every relative `_BASE_` file it includes."""
        bucket, key = parse_s3_uri(uri)
        todo, seen = [safe_key(key, uri, what)], set()
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            path = self.fetch(f"s3://{bucket}/{k}", what)
            for base in _bases(path):
                if base.startswith("/"):
                    continue  # an absolute include is the config reader's to report
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(k), base))
                if joined.startswith("../") or joined == "..":
                    raise UserError(
                        f"{what}: _BASE_ {base!r} of s3://{bucket}/{k} is above the bucket's root: give the "
                        "config inside its configs/ tree in the bucket",
                        reason="DataNotFound",
                    )
                todo.append(joined)
        return self.local(bucket, key)


def _complete(folder: Path, listing: dict[str, list[Any]]) -> bool:
    """The folder's marker lists exactly these objects, and each file is there at its size."""
    meta = cache.read_marker(folder)
    if not meta or meta.get("objects") != listing:
        return False
    return all(_is_file(_under(folder, rel), size) for rel, (_, size) in listing.items())


def _under(folder: Path, rel: str) -> Path:
    """A key's path below folder: joined by segments, so an empty one (`a//b`) cannot make it absolute."""
    return folder.joinpath(*rel.split("/"))


def _is_file(path: Path, size: int) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size


def _bases(path: Path) -> list[str]:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return []  # not readable here: the config reader reports it with its own message
    bases = doc.get("_BASE_", []) if isinstance(doc, dict) else []
    bases = [bases] if isinstance(bases, str) else bases
    return [str(b) for b in bases] if isinstance(bases, list) else []
