"""Configuration loading: defaults, overrides and errors that name the key."""

from datetime import timedelta
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import load_settings, project_view

EXAMPLE = """
[database]
url = "sqlite:///acuse.db"

[archive]
path = "archive"

[[projects]]
code = "TDP2"
name = "Torres del Parque Etapa 2"
timezone = "America/Bogota"
managers = ["cartera@constructora.example"]
missing_after = "6h"

[projects.mailbox]
host = "imap.example.co"
port = 993
security = "tls"
username = "evidencias-tdp2@example.co"
password_file = "tdp2-imap"
folder = "INBOX"
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acuse.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, EXAMPLE))

    project = project_view(settings, "TDP2")
    assert project.missing_after == timedelta(hours=6)
    assert project.settings.mailbox is not None
    assert project.settings.mailbox.effective_port == 993
    assert settings.database_url == f"sqlite:///{tmp_path / 'acuse.db'}"
    assert settings.archive_path == tmp_path / "archive"
    assert project.provider.sender_domains == ["lleida.net"]


def test_unknown_key_is_named(tmp_path: Path) -> None:
    text = EXAMPLE.replace('folder = "INBOX"', 'folder = "INBOX"\nfolders = "x"')

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text))

    assert caught.value.key == "projects[0].mailbox.folders"
    assert "projects[0].mailbox.folders" in str(caught.value)


def test_plain_refused_off_loopback(tmp_path: Path) -> None:
    text = EXAMPLE.replace('security = "tls"', 'security = "plain"')

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text))

    assert "imap.example.co" in str(caught.value)


def test_plain_allowed_on_loopback(tmp_path: Path) -> None:
    text = EXAMPLE.replace('security = "tls"', 'security = "plain"').replace(
        "imap.example.co", "127.0.0.1"
    )

    settings = load_settings(write_config(tmp_path, text))

    assert settings.projects[0].mailbox is not None


def test_bad_duration_names_key(tmp_path: Path) -> None:
    text = EXAMPLE.replace('missing_after = "6h"', 'missing_after = "six hours"')

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text))

    assert caught.value.key == "projects[0].missing_after"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACUSE_DATABASE__URL", "sqlite:////srv/other.db")

    settings = load_settings(write_config(tmp_path, EXAMPLE))

    assert settings.database_url == "sqlite:////srv/other.db"


def test_provider_override_keeps_builtin_labels(tmp_path: Path) -> None:
    text = (
        EXAMPLE
        + '\n[providers.lleida]\ntimezone = "UTC"\n[providers.lleida.labels]\nsender = ["Origen"]\n'
    )

    settings = load_settings(write_config(tmp_path, text))

    profile = settings.providers["lleida"]
    assert profile.timezone == "UTC"
    assert profile.labels.sender == ["Origen"]
    assert "Destinatario" in profile.labels.recipient


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("section", "key", "detail"),
    [
        ('lease = "2s"', "instances.lease", "from 4s to 1d"),
        ('lease = "soon"', "instances.lease", "invalid duration"),
        ('id = "two words"', "instances.id", "invalid instance id"),
        ("owner = 1", "instances.owner", "unknown key"),
    ],
)
def test_bad_instances_key_named(tmp_path: Path, section: str, key: str, detail: str) -> None:
    text = f"[instances]\n{section}\n{EXAMPLE}"

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text))

    assert caught.value.key == key
    assert detail in str(caught.value)


def test_instances_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACUSE_INSTANCES__ID", "acuse-b")

    settings = load_settings(write_config(tmp_path, EXAMPLE))

    assert settings.instances.resolved_id() == "acuse-b"
    assert settings.instances.lease == timedelta(minutes=1)
    assert settings.instances.renew_every == timedelta(seconds=15)
    assert settings.instances.hold_for == timedelta(seconds=45)


@pytest.mark.parametrize("hidden", ["\u202e", "\x1b", "\u2066", "\x00"])
def test_manager_address_with_hidden_character(tmp_path: Path, hidden: str) -> None:
    escaped = f"cartera\\u{ord(hidden):04x}1@constructora.example"
    text = EXAMPLE.replace("cartera@constructora.example", escaped)

    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text))

    assert "projects[0].managers" in str(caught.value)
    assert "bidirectional" in str(caught.value)
