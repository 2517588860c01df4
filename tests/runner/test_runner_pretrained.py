"""kslim://pretrained/<name>: weights that ship in the runner package, checked before use, and
refused at admission for a model they do not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import kslim_runner
import pytest
from kslim_api import pretrained
from kslim_api.validate import InvalidJobError, load_job
from kslim_runner.errors import KslimError, UserError
from kslim_runner.pipeline.models import load_weights
from kslim_runner.storage.checksum import sha256_file
from kslim_runner.uris import resolve_uri

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRIES = list(pretrained.REGISTRY.values())


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda p: p.name)
def test_every_shipped_file_matches_its_registry_entry_and_loads_into_its_model(
    entry: pretrained.Pretrained,
) -> None:
    from kslim_runner.models import DetectorConfig, build_detector

    path = resolve_uri(entry.uri, Path("/nonexistent"), what="model.weights")
    assert sha256_file(path) == entry.sha256
    detector = build_detector(DetectorConfig(entry.architecture, entry.num_classes, 160, float(entry.width)))
    load_weights(detector, path)  # raises on any missing or mis-shaped parameter


def test_an_unknown_name_is_the_jobs_fault() -> None:
    with pytest.raises(UserError, match="not a weights file kslim ships"):
        resolve_uri("kslim://pretrained/nope", Path("."), what="model.weights")


def test_an_altered_or_missing_file_is_the_installations_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kslim_runner.pretrained as package

    entry = ENTRIES[0]
    monkeypatch.setattr(package, "HERE", tmp_path)
    with pytest.raises(KslimError, match="missing from this kslim installation") as missing:
        resolve_uri(entry.uri, Path("."), what="model.weights")
    assert not isinstance(missing.value, UserError)
    shutil.copyfile(
        package.Path(kslim_runner.__file__).parent / "pretrained" / entry.filename, tmp_path / entry.filename
    )
    with (tmp_path / entry.filename).open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(KslimError, match="damaged") as damaged:
        resolve_uri(entry.uri, Path("."), what="model.weights")
    assert not isinstance(damaged.value, UserError)


def test_the_quick_start_starts_from_shipped_weights_that_fit_it() -> None:
    spec = load_job(REPO_ROOT / "examples" / "quickstart.yaml").spec
    assert spec.model.weights is not None
    entry = pretrained.lookup(spec.model.weights.uri)
    assert entry is not None
    assert (
        pretrained.mismatch(entry, spec.model.architecture.value, spec.model.width, spec.model.num_classes)
        is None
    )


def test_weights_for_another_model_are_refused_with_what_they_fit(tmp_path: Path) -> None:
    job = (REPO_ROOT / "examples" / "quickstart.yaml").read_text().replace('width: "0.25"', 'width: "0.5"')
    (tmp_path / "job.yaml").write_text(job)
    with pytest.raises(InvalidJobError, match=r"width 0\.25 numClasses 3"):
        load_job(tmp_path / "job.yaml")


def test_the_package_data_globs_ship_every_registry_file() -> None:
    """A runner image installs kslim from its wheel (Dockerfile): a file its package-data globs miss
    would be absent there, while an editable install still finds it."""
    import fnmatch
    import tomllib

    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for entry in ENTRIES:
        rel = f"pretrained/{entry.filename}"
        assert any(fnmatch.fnmatch(rel, g) for g in globs["kslim_runner"]), rel
