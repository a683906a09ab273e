"""Property-based fuzzing of the MIME walker, the certificate text parser and the send-log reader.

The properties: each reader either returns its result or raises its own documented error,
for any input. CI runs the ``ci`` profile (a few hundred examples per test, a bounded time);
``make fuzz`` runs the ``fuzz`` profile, with far more examples. Every crash found is kept as
a regression test in test_hostile_input.py.
"""

import os
import tempfile
from datetime import UTC
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import ProjectView, project_view, settings_from_mapping
from monitor.certificate_text import count_certificate_labels, read_evidence_fields
from monitor.mime import MalformedMessageError, ParsedMessage, parse_message
from monitor.provider import rules_for
from monitor.reading import read_message
from monitor.reading_results import MessageReading
from monitor.timestamps import parse_printed_time
from reconcile.send_log import RowError, SendLogError, SendRow, read_send_log
from tests.evidence_factory import evidence_email, lleida_profile, rejection_email
from tests.send_log_samples import HEADERS, csv_text

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PROFILE = lleida_profile()
CRLF = "\r\n"

# MIME


@cache
def seed_messages() -> tuple[bytes, ...]:
    return (evidence_email(), rejection_email())


header_names = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Disposition",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "X-Otro",
    ]
)
tricky_values = st.sampled_from(
    [
        "Lleida.net <noreply@certificado.lleida.net>",
        "=?UTF-8?B?w6k=?= =?UTF-8?Q?=C3?=",
        "=?x-desconocido?Q?hola?=",
        'multipart/mixed; boundary="b"',
        "multipart/alternative; boundary=",
        'application/pdf; name*0="Mail_"; name*="x.pdf"',
        "attachment; filename*=UTF-8''%E2%82%AC.pdf",
        "message/rfc822",
        "base64",
        "quoted-printable",
        "lun, 2 mar 2026 15:05:00 COT",
        "<a@b>",
        "",
    ]
)
header_values = st.one_of(tricky_values, st.text(max_size=60))
headers = st.lists(st.tuples(header_names, header_values), max_size=8)


@st.composite
def mime_parts(draw: st.DrawFn, depth: int = 0) -> str:
    """A part: headers, then a leaf body or, up to depth 3, a multipart of parts."""
    head = "".join(f"{name}: {value}{CRLF}" for name, value in draw(headers))
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(["b", "=_x", "z" * 70, ""]))
        children = draw(st.lists(mime_parts(depth + 1), max_size=4))
        body = "".join(f"--{boundary}{CRLF}{child}{CRLF}" for child in children)
        closing = draw(st.sampled_from([f"--{boundary}--{CRLF}", ""]))
        return (
            f'{head}Content-Type: multipart/mixed; boundary="{boundary}"{CRLF}{CRLF}{body}{closing}'
        )
    body = draw(
        st.one_of(st.text(max_size=200), st.sampled_from(["JVBERi0xLjQK", "====", "%PDF-"]))
    )
    return f"{head}{CRLF}{body}"


@given(mime_parts())
def test_mime_walker_never_crashes(text: str) -> None:
    raw = text.encode("utf-8", "surrogateescape")

    try:
        parsed = parse_message(raw)
    except MalformedMessageError:
        return

    assert isinstance(parsed, ParsedMessage)


@given(st.binary(max_size=400))
def test_mime_walker_on_bytes(raw: bytes) -> None:
    try:
        parsed = parse_message(raw)
    except MalformedMessageError:
        return

    assert isinstance(parsed, ParsedMessage)


@given(mime_parts())
def test_reader_never_raises(text: str) -> None:
    reading = read_message(("From: noreply@lleida.net" + CRLF + text).encode(), PROFILE)

    assert isinstance(reading, MessageReading)


@settings(max_examples=int(os.environ.get("ACUSE_FUZZ_MUTATIONS", "40")))
@given(
    st.integers(min_value=0, max_value=1),
    st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)), max_size=6),
)
def test_reader_on_mutated_evidence(seed: int, edits: list[tuple[float, bytes]]) -> None:
    raw = bytearray(seed_messages()[seed])
    for where, replacement in edits:
        position = int(where * (len(raw) - 1))
        raw[position : position + len(replacement)] = replacement

    reading = read_message(bytes(raw), PROFILE)

    assert isinstance(reading, MessageReading)


# Certificate text


@cache
def all_labels() -> tuple[str, ...]:
    labels = PROFILE.labels
    return tuple(label for name in type(labels).model_fields for label in getattr(labels, name))


@st.composite
def certificate_texts(draw: st.DrawFn) -> str:
    lines = []
    for _line in range(draw(st.integers(0, 15))):
        label = draw(st.sampled_from(all_labels()))
        separator = draw(st.sampled_from([": ", ":", "\n", " ", " (CET): "]))
        value = draw(
            st.one_of(
                st.text(max_size=40),
                st.sampled_from(
                    ["02/03/2026 15:05:00 CET", "550 5.1.1 <x@y>", "<id@host>", "31/02/2026 25:61"]
                ),
            )
        )
        lines.append(f"{label}{separator}{value}")
    return "\n".join(lines)


@given(certificate_texts())
def test_certificate_text_parser_never_crashes(text: str) -> None:
    rules = rules_for(PROFILE)

    fields = read_evidence_fields(text, rules)

    assert isinstance(fields.problems, tuple)
    assert count_certificate_labels(text, rules) >= 0


@given(st.text(max_size=80))
def test_printed_time_parser_never_crashes(text: str) -> None:
    parsed = parse_printed_time(text, UTC)

    assert parsed is None or parsed.tzinfo is not None


# Send log


@cache
def fuzz_project() -> ProjectView:
    settings_ = settings_from_mapping(
        {"projects": [{"code": "TDP2", "name": "Torres"}]}, Path(tempfile.gettempdir())
    )
    return project_view(settings_, "TDP2")


cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["05/03/2024 15:45", "2024-03-05T15:45", "sí", "no", "a@b.co; c@d.co", "45000.5"]
    ),
)


def read_all(data: bytes, suffix: str) -> list[SendRow | RowError]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"envios{suffix}"
        path.write_bytes(data)
        try:
            return list(read_send_log(path, fuzz_project()))
        except SendLogError:
            return []


@given(
    st.lists(st.lists(cells, min_size=8, max_size=8), max_size=6), st.sampled_from([";", ",", "\t"])
)
def test_send_log_rows_never_crash(rows: list[list[str]], delimiter: str) -> None:
    data = csv_text([HEADERS, *rows], delimiter=delimiter).encode("utf-8")

    items = read_all(data, ".csv")

    assert all(isinstance(item, SendRow | RowError) for item in items)


@given(st.binary(max_size=300), st.sampled_from([".csv", ".xlsx", ".txt"]))
def test_send_log_bytes_never_crash(data: bytes, suffix: str) -> None:
    items = read_all(data, suffix)

    assert all(isinstance(item, SendRow | RowError) for item in items)
