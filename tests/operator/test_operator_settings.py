"""Settings come from KSLIM_OPERATOR_* variables and are checked at start."""

from __future__ import annotations

import pytest
from kslim_operator.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({})
    assert s.max_concurrent_jobs == 0 and s.clusterwide and s.metrics_port == 8000
    assert s.gpu_compute_majors == [6, 7, 8]


def test_values_and_lists() -> None:
    s = load_settings(
        {
            "KSLIM_OPERATOR_IMAGE": "reg/runner:1",
            "KSLIM_OPERATOR_MAX_CONCURRENT_JOBS": "5",
            "KSLIM_OPERATOR_NAMESPACES": "team-a, team-b",
            "KSLIM_OPERATOR_GPU_COMPUTE_MAJORS": "7,8",
            "KSLIM_OPERATOR_LOG_LEVEL": "DEBUG",
            "KSLIM_OPERATOR_LEADER_ELECTION": "false",
            "KSLIM_OPERATOR_DEFAULT_CPU": "",
            "OTHER": "ignored",
        }
    )
    assert s.image == "reg/runner:1" and s.max_concurrent_jobs == 5
    assert s.namespaces == ["team-a", "team-b"] and not s.clusterwide
    assert s.gpu_compute_majors == [7, 8] and s.log_level == "DEBUG" and not s.leader_election
    assert s.default_cpu is None
    assert load_settings({"KSLIM_OPERATOR_NAMESPACES": ""}).clusterwide


def test_every_error_is_listed_by_variable_name() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                "KSLIM_OPERATOR_MAX_CONCURRENT_JOBS": "-1",
                "KSLIM_OPERATOR_METRICS_PORT": "http",
                "KSLIM_OPERATOR_MAX_CONCURENT_JOBS": "5",
            }
        )
    text = str(info.value)
    assert "KSLIM_OPERATOR_MAX_CONCURRENT_JOBS" in text
    assert "KSLIM_OPERATOR_METRICS_PORT" in text
    assert "KSLIM_OPERATOR_MAX_CONCURENT_JOBS: unknown setting" in text


def test_lease_timing_is_checked() -> None:
    with pytest.raises(SettingsError, match="RENEW_DEADLINE_SECONDS"):
        load_settings(
            {"KSLIM_OPERATOR_LEASE_DURATION_SECONDS": "5", "KSLIM_OPERATOR_RENEW_DEADLINE_SECONDS": "5"}
        )


def test_every_setting_is_documented() -> None:
    from pathlib import Path

    from kslim_operator.settings import ENV_PREFIX, Settings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in doc
    ]
    assert not missing, f"document these in docs/operations.md: {missing}"
