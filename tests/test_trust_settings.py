"""The trust keys of a provider and the [limits] section: validation, defaults, paths."""

import os
from pathlib import Path
from typing import Any

import pytest

from config.errors import ConfigError
from config.provider_settings import (
    MAX_DEFAULT_WORKERS,
    ReadingLimits,
    VerifyPolicy,
    default_reader_workers,
)
from config.settings import project_view, settings_from_mapping


def lleida(tmp_path: Path, **keys: Any) -> dict[str, Any]:
    return {"providers": {"lleida": keys}, "projects": [{"code": "TDP2", "name": "Torres"}]}


def test_trust_roots_resolved_against_config_folder(tmp_path: Path) -> None:
    settings = settings_from_mapping(lleida(tmp_path, trust_roots=["trust/ca.pem"]), tmp_path)

    profile = project_view(settings, "TDP2").provider

    assert profile.trust_roots == [tmp_path.resolve() / "trust" / "ca.pem"]


def test_explicit_policy_wins_over_default(tmp_path: Path) -> None:
    data = lleida(tmp_path, trust_roots=["ca.pem"], verify_dkim="warn")

    profile = settings_from_mapping(data, tmp_path).providers["lleida"]

    assert profile.dkim_policy is VerifyPolicy.WARN
    assert profile.signature_policy is VerifyPolicy.REQUIRE


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"verify_dkim": "sometimes"}, "providers.lleida.verify_dkim"),
        ({"dkim_keys": {"lleida.net": "v=DKIM1; p=AAAA"}}, "providers.lleida.dkim_keys"),
        ({"dkim_keys": {"s._domainkey.lleida.net": "v=DKIM1"}}, "providers.lleida.dkim_keys"),
        ({"dns_timeout": "-1s"}, "providers.lleida.dns_timeout"),
        ({"signer_pattern": "O=(Lleida"}, "providers.lleida.signer_pattern"),
    ],
)
def test_invalid_trust_key_named(tmp_path: Path, keys: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(lleida(tmp_path, **keys), tmp_path)

    assert raised.value.key == named


def test_dkim_key_names_folded(tmp_path: Path) -> None:
    data = lleida(tmp_path, dkim_keys={"S2026._DomainKey.Lleida.net.": "v=DKIM1; p=AAAA"})

    profile = settings_from_mapping(data, tmp_path).providers["lleida"]

    assert profile.dkim_keys == {"s2026._domainkey.lleida.net": "v=DKIM1; p=AAAA"}


def test_limits_defaults() -> None:
    limits = ReadingLimits()

    assert limits.max_message_bytes == 40 * 2**20
    assert limits.workers == default_reader_workers()


@pytest.mark.parametrize(
    ("usable", "expected"), [(1, 1), (2, 2), (4, 4), (64, MAX_DEFAULT_WORKERS)]
)
def test_default_workers_follow_affinity(
    monkeypatch: pytest.MonkeyPatch, usable: int, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(usable)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 128)

    assert ReadingLimits().workers == expected


def test_default_workers_without_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)

    assert default_reader_workers() == 3


def test_default_workers_when_affinity_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocked(_pid: int) -> set[int]:
        raise PermissionError("sched_getaffinity blocked by a seccomp filter")

    monkeypatch.setattr(os, "sched_getaffinity", blocked, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)

    assert default_reader_workers() == MAX_DEFAULT_WORKERS


def test_default_workers_with_unknown_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)

    assert default_reader_workers() == 1


def test_configured_workers_override_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)

    settings = settings_from_mapping({"limits": {"workers": 32}}, tmp_path)

    assert settings.limits.workers == 32


@pytest.mark.parametrize("workers", [0, 33])
def test_workers_out_of_range_named(tmp_path: Path, workers: int) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"limits": {"workers": workers}}, tmp_path)

    assert raised.value.key == "limits.workers"


def test_invalid_limit_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"limits": {"cpu_seconds": 0}}, tmp_path)

    assert raised.value.key == "limits.cpu_seconds"


def test_project_view_carries_limits(tmp_path: Path) -> None:
    data = {"limits": {"workers": 2}, "projects": [{"code": "TDP2", "name": "Torres"}]}

    project = project_view(settings_from_mapping(data, tmp_path), "TDP2")

    assert project.limits.workers == 2
