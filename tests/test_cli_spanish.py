"""What a Spanish-speaking user reads: labels, counts, dates and help, with no English leaking."""

from pathlib import Path

from acuse.labels import counted, state_label
from config.i18n import activate, ngettext
from reconcile.models import SendState
from tests.test_cli import Run, config, loaded, run

__all__ = ["config", "loaded", "run"]


def flat(text: str) -> str:
    """Join the lines of a wrapped help text or table into single spaces."""
    return " ".join(text.split())


def test_demo_speaks_spanish(run: Run) -> None:
    outcome = run("demo")

    assert outcome.code == 0
    assert "evaluada al 04/11/2026 09:00 -05:00" in outcome.stdout
    assert "14 envíos nuevos, 0 ya existentes, 0 filas rechazadas." in outcome.stdout
    assert "14 mensajes leídos: 14 guardados (11 evidencias," in outcome.stdout
    assert "9 cruces nuevos, 13 cambios de estado." in outcome.stdout
    for label in ("certificado", "entrega fallida", "rechazado", "sin certificar", "pendiente"):
        assert label in outcome.stdout
    assert "entregada" in outcome.stdout


def test_demo_leaks_no_english(run: Run) -> None:
    outcome = run("demo")

    for english in ("delivered", "certified", "messages read", "new sends", "pending", "Reason"):
        assert english not in outcome.stdout


def test_english_demo_leaks_no_spanish(run: Run) -> None:
    outcome = run("--lang", "en", "demo")

    for spanish in ("entrega fallida", "sin certificar", "Motivo", "envíos nuevos", "evaluada"):
        assert spanish not in outcome.stdout
    assert "judged as of 2026-11-04 09:00 -05:00" in outcome.stdout


def test_show_translates_rule_and_authenticity(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "show", "1", "--as-of", "2026-11-04T09:00-05:00")

    assert "Regla de cruce" in outcome.stdout
    assert "referencia en el asunto" in outcome.stdout
    assert "válida, con advertencia" in outcome.stdout
    assert "DKIM: el mensaje no tiene firma DKIM" in outcome.stdout
    assert "firma del PDF: el PDF no tiene firma" in outcome.stdout
    assert "Verificación cruzada" in outcome.stdout
    assert "Verificación DKIM" in outcome.stdout


def test_show_english_keeps_english(run: Run, loaded: Path) -> None:
    outcome = run("--lang", "en", "--config", str(loaded), "show", "1")

    assert "reference in the subject" in outcome.stdout
    assert "DKIM: the message has no DKIM signature" in outcome.stdout


def test_state_help_lists_values(run: Run) -> None:
    outcome = run("sends", "--help")

    text = flat(outcome.stdout)
    assert "missing (sin certificar: venció el plazo sin evidencia)" in text
    assert "not_copied (sin copia a Lleida.net:" in text
    for state in SendState:
        assert f"{state.value} (" in text


def test_invalid_state_names_choices(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "sends", "--state", "perdido")

    assert outcome.code == 2
    assert "'perdido'" in outcome.stderr
    assert "certified" in outcome.stderr


def test_quarantine_code_translated(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "quarantine")

    assert "PDF ilegible" in outcome.stdout
    assert "unreadable_pdf" not in outcome.stdout


def test_quarantine_json_keeps_code(run: Run, loaded: Path) -> None:
    outcome = run("--config", str(loaded), "quarantine", "--format", "json")

    assert '"code": "unreadable_pdf"' in outcome.stdout


def test_counts_agree_in_spanish() -> None:
    activate("es_CO")

    one = counted(ngettext("{count} new send", "{count} new sends", 1), 1)
    many = counted(ngettext("{count} new send", "{count} new sends", 1234), 1234)
    none = counted(ngettext("{count} new send", "{count} new sends", 0), 0)

    assert one == "1 envío nuevo"
    assert many == "1.234 envíos nuevos"
    assert none == "0 envíos nuevos"


def test_state_label_differs_from_evidence_kind() -> None:
    activate("es_CO")

    assert state_label(SendState.REJECTED) == "rechazado"
    assert state_label(SendState.MISSING) == "sin certificar"


def test_unknown_lang_is_usage_error(run: Run) -> None:
    outcome = run("--lang", "fr", "status")

    assert outcome.code == 2
    assert "'fr'" in outcome.stderr
    assert "es" in outcome.stderr


def write_config(folder: Path, extra: str) -> Path:
    path = folder / "acuse.toml"
    base = '[database]\nurl = "sqlite:///acuse.db"\n[archive]\npath = "archive"\n'
    path.write_text(base + extra, encoding="utf-8")
    return path


def test_config_error_in_spanish(run: Run, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, '[[projects]]\ncode = "T P"\nname = "Torre"\n')

    outcome = run("--config", str(config_path), "status")

    assert outcome.code == 2
    assert "projects[0].code: código de proyecto 'T P' no válido" in outcome.stderr


def test_type_error_names_fix(run: Run, tmp_path: Path) -> None:
    config_path = write_config(tmp_path, '[defaults]\nfetch_batch = "many"\n')

    outcome = run("--config", str(config_path), "status")

    assert outcome.code == 2
    assert (
        "defaults.fetch_batch: valor 'many' no válido: escriba un número entero." in outcome.stderr
    )


def test_choice_error_lists_values(run: Run, tmp_path: Path) -> None:
    mailbox = (
        '[[projects]]\ncode = "TP"\nname = "Torre"\n[projects.mailbox]\nhost = "h"\n'
        'security = "ssl"\nusername = "u"\npassword_file = "p"\n'
    )
    config_path = write_config(tmp_path, mailbox)

    outcome = run("--lang", "en", "--config", str(config_path), "status")

    assert outcome.code == 2
    assert "invalid value 'ssl': use one of 'tls', 'starttls', 'plain'." in outcome.stderr
