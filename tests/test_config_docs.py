"""The configuration references name every key that the settings classes accept."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from config.alert_settings import AlertSettings, ProjectAlertSettings, SmtpSettings
from config.instance_settings import InstanceSettings
from config.mailbox_settings import MailboxSettings, OAuth2Settings
from config.provider_settings import ProviderProfile, ReadingLimits
from config.settings import (
    ArchiveSettings,
    DatabaseSettings,
    Defaults,
    MetricsSettings,
    ProjectSettings,
    SendLogSettings,
    Settings,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
REFERENCES = ["configuration.md", "configuracion.md"]

# Each class, the table name its section is titled with, and the keys that have their own
# section instead of a row.
SECTIONS: list[tuple[type[BaseModel], str, set[str]]] = [
    (DatabaseSettings, "[database]", set()),
    (ArchiveSettings, "[archive]", set()),
    (Defaults, "[defaults]", set()),
    (ProjectSettings, "[[projects]]", {"mailbox", "send_log", "alerts"}),
    (MailboxSettings, "[projects.mailbox]", {"oauth2"}),
    (OAuth2Settings, "[projects.mailbox.oauth2]", set()),
    (SendLogSettings, "[projects.send_log]", set()),
    (ProjectAlertSettings, "[projects.alerts]", set()),
    (SmtpSettings, "[smtp]", set()),
    (AlertSettings, "[alerts]", set()),
    (ReadingLimits, "[limits]", set()),
    (InstanceSettings, "[instances]", set()),
    (MetricsSettings, "[metrics]", set()),
    (ProviderProfile, "[providers.lleida]", {"labels"}),
]


def section_text(document: str, table: str) -> str:
    """Return the text under the heading that names ``table``, up to the next heading."""
    heading = re.compile(rf"^#+ `{re.escape(table)}`$", re.MULTILINE)
    match = heading.search(document)
    assert match is not None, f"no section for {table}"
    following = re.compile(r"^#", re.MULTILINE).search(document, match.end())
    return document[match.end() : following.start() if following else len(document)]


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize(("model", "table", "own_sections"), SECTIONS)
def test_reference_lists_every_key(
    reference: str, model: type[BaseModel], table: str, own_sections: set[str]
) -> None:
    text = section_text((DOCS / reference).read_text(encoding="utf-8"), table)

    for name, field in model.model_fields.items():
        key = field.alias or name
        if key in own_sections:
            continue
        assert f"`{key}`" in text, f"{reference} {table} lacks `{key}`"


@pytest.mark.parametrize("reference", REFERENCES)
def test_reference_has_every_section(reference: str) -> None:
    document = (DOCS / reference).read_text(encoding="utf-8")
    tables = {
        "providers": "[providers.lleida]",
        "projects": "[[projects]]",
    }

    for name in Settings.model_fields:
        section_text(document, tables.get(name, f"[{name}]"))
