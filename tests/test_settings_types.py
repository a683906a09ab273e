"""Every settings key rejects values of the wrong type, and every duration its out-of-range values,
with a ConfigError that names the key and never another exception."""

import copy
import enum
import math
import types
import typing
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from config.errors import ConfigError
from config.settings import Settings, project_view, settings_from_mapping

MAILBOX = {
    "host": "imap.example.co",
    "port": 993,
    "security": "tls",
    "username": "evidencias@example.co",
    "password_file": "imap-password",
    "folder": "INBOX",
    "timeout": "30s",
    "ca_file": "ca.pem",
    "idle": False,
    "idle_renew": "10m",
}

OAUTH2_MAILBOX = {
    "host": "outlook.office365.com",
    "username": "evidencias@example.co",
    "auth": "oauth2",
    "oauth2": {
        "flow": "refresh_token",
        "provider": "microsoft",
        "tenant": "example.co",
        "client_id": "app-id",
        "refresh_token_file": "refresh-token",
        "scope": "offline_access",
        "token_url": "https://login.example.co/token",
        "ca_file": "ca.pem",
        "mechanism": "auto",
    },
}

KIND = {"enabled": True, "mode": "digest", "recipients": ["ops@example.co"]}

BASE: dict[str, Any] = {
    "database": {"url": "sqlite:///acuse.db"},
    "archive": {"path": "archive"},
    "defaults": {"locale": "en", "timezone": "America/Bogota", "fetch_batch": 100},
    "metrics": {"listen": "127.0.0.1:9464"},
    "limits": {"workers": 1, "wall_seconds": 120.0},
    "providers": {
        "lleida": {
            "dkim_keys": {"s1._domainkey.lleida.net": "v=DKIM1; p=AAAA"},
            "labels": {"sender": ["Remitente", "Sender"]},
        }
    },
    "smtp": {
        "host": "smtp.example.co",
        "port": 587,
        "security": "starttls",
        "username": "alerts",
        "password_file": "smtp-password",
        "from": "acuse <alerts@example.co>",
        "timeout": "30s",
        "ca_file": "ca.pem",
    },
    "alerts": {
        "operators": ["ops@example.co"],
        "digest_at": "07:00",
        "templates": "templates",
        "kinds": {"certification_missing": dict(KIND)},
    },
    "projects": [
        {
            "code": "TDP2",
            "name": "Torres del Parque 2",
            "timezone": "America/Bogota",
            "locale": "es",
            "managers": ["cartera@example.co"],
            "provider": "lleida",
            "missing_after": "6h",
            "orphan_after": "1d",
            "poll_interval": "5m",
            "match_window_before": "15m",
            "match_window_after": "6h",
            "reference_pattern": r"REF-(\d+)",
            "mailbox": MAILBOX,
            "send_log": {
                "path": "exports/*.csv",
                "interval": "15m",
                "columns": {"recipient": "Correo"},
                "date_format": "%d/%m/%Y %H:%M",
            },
            "alerts": {
                "recipients": ["cartera@example.co"],
                "operators": ["ops@example.co"],
                "digest_at": "08:00",
                "kinds": {"delivery_failed": dict(KIND)},
            },
        },
        {"code": "OAUTH", "name": "OAuth2 mailbox", "mailbox": OAUTH2_MAILBOX},
    ],
}

NOT_A_TEXT = [5, 1.5, math.inf, math.nan, True, ["x"], {"x": "y"}]
NOT_A_BOOLEAN = [5, 1.5, math.inf, math.nan, ["x"], {"x": "y"}]
NOT_AN_INTEGER = [1.5, math.inf, math.nan, True, ["x"], {"x": "y"}]
NOT_A_NUMBER = [math.inf, -math.inf, math.nan, True, ["x"], {"x": "y"}]
NOT_A_DURATION = [math.inf, math.nan, True, False, 1e300, "99999999999w", ["x"], {"x": "y"}]
NOT_A_TIME = [5, 1.5, math.inf, True, ["x"], {"x": "y"}]
NOT_A_LIST = [5, math.inf, True, {"x": "y"}, [5], [True], [{"x": "y"}]]
NOT_A_TABLE = [5, math.inf, True, ["x"], {"x": 5}]
NOT_A_SECTION = [5, math.inf, True, "x", ["x"], {"unknown_key": 5}]


def _base_type(annotation: Any) -> Any:
    """The type under Optional and Annotated: ``Annotated[timedelta, ...] | None`` is timedelta."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            assert len(members) == 1, annotation
            annotation = members[0]
        else:
            return annotation


def _wrong_values(base_type: Any) -> list[Any]:
    origin = typing.get_origin(base_type)
    if origin is list:
        return NOT_A_LIST
    if origin is dict:
        return NOT_A_TABLE
    if isinstance(base_type, type) and issubclass(base_type, BaseModel):
        return NOT_A_SECTION
    choices: list[tuple[type, list[Any]]] = [
        (bool, NOT_A_BOOLEAN),
        (int, NOT_AN_INTEGER),
        (float, NOT_A_NUMBER),
        (timedelta, NOT_A_DURATION),
        (time, NOT_A_TIME),
        (str, NOT_A_TEXT),
        (Path, NOT_A_TEXT),
        (enum.Enum, NOT_A_TEXT),
    ]
    for kind, values in choices:
        if isinstance(base_type, type) and issubclass(base_type, kind):
            return values
    raise AssertionError(f"no wrong values for {base_type!r}")


def _fields(
    model: type[BaseModel], data: dict[str, Any], path: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], Any]]:
    """List (location, base type) of every key of ``model``, and of the sections in ``data``."""
    found: list[tuple[tuple[str | int, ...], Any]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        base_type = _base_type(field.annotation)
        found.append(((*path, key), base_type))
        value = data.get(key)
        if isinstance(base_type, type) and issubclass(base_type, BaseModel):
            if isinstance(value, dict):
                found.extend(_fields(base_type, value, (*path, key)))
        elif typing.get_origin(base_type) in (list, dict) and value:
            item_type = _base_type(typing.get_args(base_type)[-1])
            if isinstance(item_type, type) and issubclass(item_type, BaseModel):
                items = enumerate(value) if isinstance(value, list) else value.items()
                for index, item in items:
                    found.extend(_fields(item_type, item, (*path, key, index)))
    return found


def _dotted(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text


def _with_value(location: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    target: Any = data
    for part in location[:-1]:
        target = target[part]
    target[location[-1]] = value
    return data


FIELDS = _fields(Settings, BASE, ())
DURATION_FIELDS = [location for location, kind in FIELDS if kind is timedelta]


def test_base_mapping_valid(tmp_path: Path) -> None:
    settings = settings_from_mapping(BASE, tmp_path)

    assert [project.code for project in settings.projects] == ["TDP2", "OAUTH"]


def test_sweep_reaches_nested_sections() -> None:
    dotted = {_dotted(location) for location, _kind in FIELDS}

    assert "projects[1].mailbox.oauth2.token_url" in dotted
    assert "providers.lleida.labels.sender" in dotted
    assert "alerts.kinds.certification_missing.mode" in dotted
    assert "smtp.from" in dotted
    assert "limits.wall_seconds" in dotted


@pytest.mark.parametrize(("location", "base_type"), FIELDS, ids=[_dotted(f[0]) for f in FIELDS])
def test_wrong_type_names_key(
    tmp_path: Path, location: tuple[str | int, ...], base_type: Any
) -> None:
    key = _dotted(location)
    for value in _wrong_values(base_type):
        with pytest.raises(ConfigError) as raised:
            settings_from_mapping(_with_value(location, value), tmp_path)

        assert raised.value.key is not None, value
        assert raised.value.key.startswith(key), (value, raised.value.key)
        assert key in str(raised.value), value


@pytest.mark.parametrize("location", DURATION_FIELDS, ids=[_dotted(f) for f in DURATION_FIELDS])
def test_duration_range_names_key(tmp_path: Path, location: tuple[str | int, ...]) -> None:
    key = _dotted(location)
    for value in (-1, -21600, "3651d", 366 * 86400 * 11):
        with pytest.raises(ConfigError) as raised:
            settings_from_mapping(_with_value(location, value), tmp_path)

        assert raised.value.key == key, value


@pytest.mark.parametrize(
    ("section", "key", "value", "accepted"),
    [
        ("defaults", "poll_interval", "0s", "from 1s to 1d"),
        ("defaults", "reconcile_interval", "0s", "from 1s to 1d"),
        ("defaults", "send_log_interval", "0s", "from 1s to 1d"),
        ("defaults", "job_timeout", "0s", "from 1s to 1d"),
        ("defaults", "imap_timeout", "2h", "from 1s to 1h"),
        ("defaults", "missing_after", "30s", "from 1m to 90d"),
        ("defaults", "missing_after", -21600, "from 1m to 90d"),
        ("defaults", "orphan_after", "91d", "from 1m to 90d"),
        ("defaults", "match_window_before", "8d", "from 0s to 7d"),
        ("alerts", "retry_first", "0s", "from 1s to 1d"),
        ("alerts", "lookback", "30m", "from 1h to 3650d"),
    ],
)
def test_duration_outside_range(
    tmp_path: Path, section: str, key: str, value: Any, accepted: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(_with_value((section, key), value), tmp_path)

    assert raised.value.key == f"{section}.{key}"
    assert accepted in str(raised.value)


def test_duration_boolean_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(_with_value(("defaults", "missing_after"), True), tmp_path)

    assert raised.value.key == "defaults.missing_after"


def test_zero_match_window_kept(tmp_path: Path) -> None:
    data = _with_value(("projects", 0, "match_window_before"), "0s")

    settings = settings_from_mapping(data, tmp_path)

    assert project_view(settings, "TDP2").match_window_before == timedelta(0)


def test_duration_as_seconds(tmp_path: Path) -> None:
    data = _with_value(("projects", 0, "missing_after"), 5400)

    settings = settings_from_mapping(data, tmp_path)

    assert project_view(settings, "TDP2").missing_after == timedelta(minutes=90)


def test_local_time_digest_at(tmp_path: Path) -> None:
    data = _with_value(("alerts", "digest_at"), time(6, 30))

    settings = settings_from_mapping(data, tmp_path)

    assert settings.alerts.digest_at == time(6, 30)


def test_duplicate_code_ignores_case(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["projects"].append({"code": "tdp2", "name": "Same project, other case"})

    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(data, tmp_path)

    assert raised.value.key == "projects[2].code"
    assert "projects[2].code: " in str(raised.value)
    assert "'TDP2'" in str(raised.value)


def test_unknown_provider_names_key(tmp_path: Path) -> None:
    data = _with_value(("projects", 1, "provider"), "acme")

    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(data, tmp_path)

    assert raised.value.key == "projects[1].provider"
