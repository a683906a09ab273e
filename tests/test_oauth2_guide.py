"""Every configuration example in the OAuth2 guide, English and Spanish, loads as written."""

import re
from pathlib import Path

import pytest

from config.mailbox_settings import MailboxAuth
from config.settings import load_settings

DOCS = Path(__file__).parent.parent / "docs"
GUIDES = ("oauth2.md", "oauth2.es.md")
TOML_BLOCK = re.compile(r"```toml\n(.*?)```", re.DOTALL)
DATABASE = '[database]\nurl = "sqlite:///acuse.db"\n\n'
PROJECT = '[[projects]]\ncode = "TDP2"\nname = "Torres del Parque Etapa 2"\n\n'
MAILBOX = (
    '[projects.mailbox]\nhost = "outlook.office365.com"\n'
    'username = "evidencias-tdp2@constructora.example"\nauth = "oauth2"\n\n'
)


def examples() -> list[tuple[str, int, str]]:
    found = []
    for guide in GUIDES:
        blocks = TOML_BLOCK.findall((DOCS / guide).read_text(encoding="utf-8"))
        found.extend((guide, number, block) for number, block in enumerate(blocks, start=1))
    return found


def complete_config(block: str) -> str:
    """Add the sections that an example leaves out because the guide shows them elsewhere."""
    if "[[projects]]" in block:
        return DATABASE + block
    if block.startswith("[projects.mailbox]"):
        return DATABASE + PROJECT + block
    return DATABASE + PROJECT + MAILBOX + block


def test_each_guide_has_four_examples() -> None:
    counts = {guide: sum(1 for found in examples() if found[0] == guide) for guide in GUIDES}

    assert counts == {"oauth2.md": 4, "oauth2.es.md": 4}


@pytest.mark.parametrize(("guide", "number", "block"), examples())
def test_guide_example_loads(tmp_path: Path, guide: str, number: int, block: str) -> None:
    path = tmp_path / "acuse.toml"
    path.write_text(complete_config(block), encoding="utf-8")

    settings = load_settings(path)

    mailbox = settings.projects[0].mailbox
    assert mailbox is not None
    assert mailbox.auth is MailboxAuth.OAUTH2
    assert mailbox.oauth2 is not None
    assert f'flow = "{mailbox.oauth2.flow.value}"' in block
