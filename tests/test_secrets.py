"""Secret files: where a bare name is looked up, and the error for a missing file."""

from pathlib import Path

import pytest

from config.errors import SecretError
from config.secrets import read_secret
from config.settings import Settings, load_settings

KEY = "projects[TDP2].mailbox.password_file"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    config = tmp_path / "etc" / "acuse.toml"
    config.parent.mkdir()
    config.write_text('[[projects]]\ncode = "TDP2"\nname = "Torres"\n', encoding="utf-8")
    return load_settings(config)


def test_bare_name_read_from_credentials(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "tdp2.password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    assert read_secret(settings, "tdp2.password", KEY) == "s3cret"


def test_missing_bare_name_without_credentials_env(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)

    with pytest.raises(SecretError) as caught:
        read_secret(settings, "tdp2.password", KEY)

    message = str(caught.value)
    assert "CREDENTIALS_DIRECTORY is not set" in message
    assert str(tmp_path / "etc" / "tdp2.password") in message
    assert KEY in message


def test_missing_bare_name_lists_both_folders(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))

    with pytest.raises(SecretError) as caught:
        read_secret(settings, "tdp2.password", KEY)

    message = str(caught.value)
    assert str(credentials / "tdp2.password") in message
    assert str(tmp_path / "etc" / "tdp2.password") in message
    assert "LoadCredential=" in message


def test_missing_path_names_path_only(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)

    with pytest.raises(SecretError) as caught:
        read_secret(settings, "secrets/tdp2.password", KEY)

    assert str(tmp_path / "etc" / "secrets" / "tdp2.password") in str(caught.value)
    assert "CREDENTIALS_DIRECTORY" not in str(caught.value)
