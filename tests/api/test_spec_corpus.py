"""`kslim validate` and the API server agree on every file of the corpus (spec_corpus): both accept
it, or both refuse it naming the same field. The whole corpus goes to the API server in one
`kubectl apply --dry-run=server` of a directory."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from kslim_api.validate import InvalidJobError, load_job
from spec_corpus import CORPUS, YAML_TEXT, CorpusFile
from support.controlplane import ControlPlane


def validate_errors(text: str) -> list[str] | None:
    """The `path: message` lines of `kslim validate`, None when it accepts the file."""
    try:
        load_job(text)
    except InvalidJobError as err:
        return [str(e) for e in err.errors]
    return None


def names_field(lines: list[str], field: str) -> bool:
    return any(line.startswith(f"{field}: ") for line in lines)


def server_names_field(err: str, field: str) -> bool:
    """`spec.x: Invalid value...`, `spec.x[1]: Duplicate value`, `unknown field "spec.x.y"`, or a
    root rule's message naming it (`<nil>: Invalid value: metadata.name must be ...`)."""
    return re.search(rf'(^|[\s\["]){re.escape(field)}([:"\.\[ ])', err) is not None


def test_corpus_is_big_and_distinct() -> None:
    ids = [c.id for c in CORPUS]
    assert not [i for i, n in Counter(ids).items() if n > 1]
    assert len(CORPUS) >= 150
    assert sum(c.field is not None for c in CORPUS) >= 150


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_kslim_validate_on_the_corpus(case: CorpusFile) -> None:
    errors = validate_errors(case.text)
    if case.field is None:
        assert errors is None, errors
    else:
        assert errors is not None, f"kslim validate accepted {case.id}"
        assert names_field(errors, case.field), f"expected an error on {case.field}, got {errors}"


@pytest.mark.parametrize(
    ("raw", "field"),
    [("learning-rate-1e-4", "spec.train.learningRate"), ("max-latency-1e3", "spec.qualityGate")],
)
def test_unquoted_decimals_are_refused_with_a_hint_to_quote(raw: str, field: str) -> None:
    (case,) = [c for c in YAML_TEXT if c.id == f"yaml-{raw}"]
    errors = validate_errors(case.text)
    assert errors is not None and any(field in e and "quote the value" in e for e in errors), errors


@pytest.mark.cluster
def test_the_api_server_agrees_on_the_corpus(
    control_plane: ControlPlane, crds_installed: list[str], namespace: str, tmp_path: Path
) -> None:
    for case in CORPUS:
        (tmp_path / f"{case.id}.yaml").write_text(case.text)
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-o", "name", "-f", str(tmp_path), check=False
    )
    # One error per refused file, each naming its file: split stderr at the file names.
    starts = sorted(
        (m.start(), m.group(1))
        for m in re.finditer(rf'"{re.escape(str(tmp_path))}/([^"/]+)\.yaml"', result.stderr)
    )
    refused: dict[str, str] = {}
    for (start, name), end in zip(starts, [s for s, _ in starts[1:]] + [len(result.stderr)], strict=True):
        refused[name] = refused.get(name, "") + result.stderr[start:end]
    problems = []
    for case in CORPUS:
        err = refused.get(case.id)
        if case.field is None and err is not None:
            problems.append(f"{case.id}: the API server refused it: {err}")
        elif case.field is not None and err is None:
            problems.append(f"{case.id}: the API server accepted it")
        elif case.field is not None and err is not None and not server_names_field(err, case.field):
            problems.append(f"{case.id}: the API server's error does not name {case.field}: {err}")
    accepted = [c for c in CORPUS if c.field is None]
    assert len(result.stdout.splitlines()) == len(accepted), result.stdout
    assert not problems, "\n".join(problems)
    # Unquoted decimals: the server's words for "quote it" (kslim validate's: see above).
    for name in ("yaml-learning-rate-1e-4", "yaml-max-latency-1e3"):
        assert "must be of type string" in refused[name], refused[name]
