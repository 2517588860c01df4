"""Unpacking archives: path escapes, links and bombs are refused with nothing extracted; a good
archive unpacks once and is reused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from kslim_api.contract import EXIT_USER
from kslim_runner.errors import UserError
from kslim_runner.storage import cache
from kslim_runner.storage.archive import extract
from kslim_runner.storage.checksum import check_sha256, sha256_file


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _refused(archive: Path, needle: str) -> None:
    with pytest.raises(UserError) as e:
        extract(archive, f"s3://b/{archive.name}", "dataset.train.images")
    assert e.value.exit_code == EXIT_USER and e.value.reason == "UnsafeArchive"
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not [
        p for p in archive.parent.iterdir() if p.name.startswith((f"{archive.name}.d", f".{archive.name}"))
    ]


def test_a_tar_gz_unpacks_to_its_single_folder_and_is_reused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "train.tar.gz", {"train/a.jpg": b"a" * 10, "train/sub/b.jpg": b"b"})
    folder = extract(archive, "https://x/train.tar.gz", "dataset.train.images")
    assert folder.name == "train" and (folder / "a.jpg").read_bytes() == b"a" * 10
    assert (folder / "sub" / "b.jpg").exists()
    before = (folder / "a.jpg").stat().st_mtime_ns
    assert extract(archive, "https://x/train.tar.gz", "dataset.train.images") == folder
    assert (folder / "a.jpg").stat().st_mtime_ns == before  # not unpacked again


def test_a_zip_with_several_top_entries_unpacks_to_its_folder(tmp_path: Path) -> None:
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.jpg", b"a")
        zf.writestr("b.jpg", b"b")
    folder = extract(archive, "s3://b/imgs.zip", "dataset.val.images")
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("name", ["../evil.jpg", "ok/../../evil.jpg", "/etc/evil.jpg"])
def test_tar_members_escaping_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    _refused(_tar(tmp_path / "bad.tar", {"ok.jpg": b"x", name: b"y"}, mode="w"), "points outside its folder")
    assert not (tmp_path / "evil.jpg").exists()


def test_zip_members_escaping_the_folder_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.jpg", b"x")
        zf.writestr("..\\evil.jpg", b"y")
    _refused(archive, "points outside its folder")


def test_links_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        link = tarfile.TarInfo("imgs")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tf.addfile(link)
    _refused(archive, "a link or device file")


def test_an_archive_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 80 << 20  # 80 MiB of zeros pack to ~80 KB: ratio ~1000
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    _refused(archive, "likely archive bomb")


def test_the_absolute_size_limit_counts_written_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KSLIM_ARCHIVE_MAX_BYTES", "1000")
    _refused(
        _tar(tmp_path / "big.tar", {"a.bin": bytes(600), "b.bin": bytes(600)}, mode="w"), "limits 1000 bytes"
    )


def test_a_corrupt_archive_is_a_user_error(tmp_path: Path) -> None:
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(b"not gzip at all")
    with pytest.raises(UserError) as e:
        extract(archive, "s3://b/junk.tar.gz", "dataset.train.images")
    assert e.value.reason == "BadArchive"


def test_checksums(tmp_path: Path) -> None:
    f = tmp_path / "w.pdparams"
    f.write_bytes(b"weights")
    digest = sha256_file(f)
    check_sha256(digest, digest, "s3://b/w.pdparams", "model.weights")
    check_sha256(digest, None, "s3://b/w.pdparams", "model.weights")
    with pytest.raises(UserError) as e:
        check_sha256(digest, "0" * 64, "s3://b/w.pdparams", "model.weights")
    assert e.value.reason == "ChecksumMismatch" and e.value.exit_code == EXIT_USER


def test_markers_live_outside_the_cached_folders(download_cache: Path) -> None:
    target = download_cache / "s3" / "e" / "bucket" / "imgs" / "a.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a")
    cache.write_marker(target, {"etag": "x"})
    assert cache.read_marker(target) == {"etag": "x"}
    assert [p.name for p in target.parent.iterdir()] == ["a.jpg"]
