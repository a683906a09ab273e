"""The ``[smtp]`` and ``[alerts]`` settings and how they route each kind of alert."""

from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.alert_settings import AlertKind, AlertMode
from config.errors import ConfigError
from config.settings import Settings, load_settings, project_view
from config.types import Security
from reconcile.alert_routing import kind_route, latest_digest_time, next_digest_time
from tests.alert_scenario import local

EXAMPLE = """
[smtp]
host = "smtp.example.co"
port = 587
security = "starttls"
username = "alertas@example.co"
password_file = "smtp-password"
from = "Acuse <alertas@example.co>"

[alerts]
operators = ["operaciones@example.co"]
reminder_every = "24h"
digest_at = "07:00"

[[projects]]
code = "TDP2"
name = "Torres del Parque"
managers = ["cartera@example.co"]
"""


def project_settings(make_settings: Callable[..., Settings], **alerts: Any) -> Settings:
    return make_settings(
        alerts={"operators": ["operaciones@example.co"]},
        projects=[
            {
                "code": "TDP2",
                "name": "Torres del Parque",
                "managers": ["cartera@example.co"],
                "alerts": alerts,
            }
        ],
    )


def test_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "acuse.toml"
    path.write_text(EXAMPLE, encoding="utf-8")

    settings = load_settings(path)

    assert settings.smtp is not None
    assert settings.smtp.security is Security.STARTTLS
    assert settings.smtp.sender_address == "alertas@example.co"
    assert settings.smtp.effective_port == 587
    assert settings.alerts.reminder_every == timedelta(hours=24)
    assert settings.alerts.digest_at == time(7, 0)


def test_plain_smtp_needs_loopback(make_settings: Callable[..., Settings]) -> None:
    smtp = {"host": "smtp.example.co", "security": "plain", "from": "alertas@example.co"}

    with pytest.raises(ConfigError) as caught:
        make_settings(smtp=smtp)

    assert caught.value.key == "smtp"
    assert "loopback" in str(caught.value)


def test_username_needs_password_file(make_settings: Callable[..., Settings]) -> None:
    smtp = {"host": "smtp.example.co", "username": "alertas", "from": "alertas@example.co"}

    with pytest.raises(ConfigError) as caught:
        make_settings(smtp=smtp)

    assert "password_file" in str(caught.value)


def test_unknown_alert_kind_is_named(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(alerts={"kinds": {"certificate_missing": {"enabled": False}}})

    assert "certificate_missing" in str(caught.value)
    assert "certification_missing" in str(caught.value)


def test_invalid_digest_time_is_named(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(alerts={"digest_at": "7am"})

    assert caught.value.key == "alerts.digest_at"


def test_managers_receive_send_kinds(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings)

    route = kind_route(settings, project_view(settings, "TDP2"), AlertKind.CERTIFICATION_MISSING)

    assert route.recipients == ("cartera@example.co",)
    assert route.mode is AlertMode.IMMEDIATE
    assert route.enabled is True


def test_operators_receive_operational_kinds(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings)

    route = kind_route(settings, project_view(settings, "TDP2"), AlertKind.MAILBOX_UNREACHABLE)

    assert route.recipients == ("operaciones@example.co",)


def test_orphans_default_to_digest(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings)

    route = kind_route(settings, project_view(settings, "TDP2"), AlertKind.ORPHAN_EVIDENCE)

    assert route.mode is AlertMode.DIGEST


def test_project_layer_overrides_global(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        alerts={"kinds": {"not_copied": {"enabled": False, "mode": "digest"}}},
        projects=[
            {
                "code": "TDP2",
                "name": "Torres del Parque",
                "managers": ["cartera@example.co"],
                "alerts": {"kinds": {"not_copied": {"enabled": True}}},
            }
        ],
    )

    route = kind_route(settings, project_view(settings, "TDP2"), AlertKind.NOT_COPIED)

    assert route.enabled is True
    assert route.mode is AlertMode.DIGEST


def test_project_switch_turns_all_off(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings, enabled=False)

    route = kind_route(settings, project_view(settings, "TDP2"), AlertKind.DELIVERY_FAILED)

    assert route.enabled is False


def test_digest_before_its_time_is_yesterdays(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings)
    project = project_view(settings, "TDP2")

    latest = latest_digest_time(settings, project, local(2026, 11, 4, 6, 59))
    upcoming = next_digest_time(settings, project, local(2026, 11, 4, 6, 59))

    assert latest == local(2026, 11, 3, 7, 0)
    assert upcoming == local(2026, 11, 4, 7, 0)


def test_digest_time_is_local(make_settings: Callable[..., Settings]) -> None:
    settings = project_settings(make_settings, digest_at="18:30")
    project = project_view(settings, "TDP2")

    latest = latest_digest_time(settings, project, local(2026, 11, 4, 23, 0))

    assert latest == local(2026, 11, 4, 18, 30)
    assert latest.utcoffset() == timedelta(hours=-5)
