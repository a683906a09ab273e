"""Parse a raw message into decoded headers, text bodies, attachments and forwarded messages.

The parser is the standard library's ``email`` package, with decoding done here. mail-parser
(4.8) is built on the same parser but fits evidence badly: it treats an unnamed
``application/octet-stream`` part as body text, so a PDF sent that way comes back as a
decoded string instead of bytes. It also names unnamed attachments randomly, flattens the
parts of forwarded messages into the outer message's list, re-encodes every attachment to
base64, and parses Received headers that acuse never reads.

The ``compat32`` policy is used because its header access only returns strings, while the
header registry of ``policy.default`` raises IndexError on some malformed address and
parameter headers (python/cpython GitHub issues 148518 and 151857). The decoding here
handles RFC 2047 (also inside quoted file names), RFC 2231, raw 8-bit headers, and unknown,
empty or wrong charsets.
"""

import base64
import binascii
import hashlib
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property
from html.parser import HTMLParser

from config.errors import AcuseError
from config.provider_settings import ReadingLimits
from monitor.limits import check_structure
from monitor.provider import collapse_whitespace
from monitor.timestamps import parse_printed_time

MAX_FORWARD_DEPTH = 4
PDF_MAGIC = b"%PDF-"
# PDF readers tolerate bytes before the %PDF- header, so it is searched for in a window.
PDF_MAGIC_WINDOW = 1024
PDF_CONTENT_TYPES = frozenset({"application/pdf", "application/x-pdf", "application/acrobat"})
FORWARDED_CONTENT_TYPES = frozenset({"message/rfc822", "message/global"})
FALLBACK_CHARSETS = ("utf-8", "cp1252")
# WHATWG Encoding: these labels mean windows-1252, whose printable 0x80-0x9F characters
# (curly quotes, the euro sign) mail clients write while declaring ISO-8859-1.
_WINDOWS_1252_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii"}
)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_LINE_BREAK = re.compile(r"\r?\n")
_ENCODED_WORD = re.compile(r"=\?[^?]+\?[bqBQ]\?[^?]*\?=")
# Zones that RFC 5322 section 4.3 defines and email.utils reads. Any other name after the time
# (COT, CET) is read by monitor.timestamps, because email.utils takes it for UTC.
_RFC5322_ZONES = frozenset({"UT", "UTC", "GMT", "Z", "EST", "EDT", "CST", "CDT", "MST", "MDT"})
_RFC5322_ZONES |= {"PST", "PDT"}
_NUMERIC_ZONE = re.compile(r"^[+-]\d{4}$")
_WIRE_POLICY = compat32.clone(linesep="\r\n")


class MalformedMessageError(AcuseError):
    """The bytes are not an email message that can be parsed."""


@dataclass(frozen=True)
class Attachment:
    """A non-body part of a message: its decoded file name, content type and bytes."""

    filename: str | None
    content_type: str
    data: bytes

    @property
    def is_pdf(self) -> bool:
        """Whether the part is a PDF by content type, by ``.pdf`` name or by its header bytes."""
        if self.content_type in PDF_CONTENT_TYPES:
            return True
        if self.filename and self.filename.strip().lower().endswith(".pdf"):
            return True
        return PDF_MAGIC in self.data[:PDF_MAGIC_WINDOW]

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of the attachment's bytes, in hex."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ParsedMessage:
    """One message with its headers decoded; forwarded messages are parsed the same way."""

    subject: str | None
    from_addresses: tuple[str, ...]
    to_addresses: tuple[str, ...]
    date: datetime | None
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text_bodies: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    forwarded: tuple["ParsedMessage", ...]
    defects: tuple[str, ...] = field(default=())
    raw: bytes | None = field(default=None, repr=False, compare=False)
    source: Message | None = field(default=None, repr=False, compare=False)

    @cached_property
    def wire_bytes(self) -> bytes:
        """The message's bytes: as received, or serialized again for a forwarded part.

        A message forwarded inline was parsed as a part of the outer one, so its bytes are
        rebuilt with CRLF line ends. Header folding may then differ from the original, which
        relaxed DKIM canonicalization tolerates. Returns ``b""`` when serializing fails.
        """
        if self.raw is not None:
            return self.raw
        if self.source is None:
            return b""
        try:
            return self.source.as_bytes(policy=_WIRE_POLICY)
        except (LookupError, UnicodeError, ValueError, TypeError):
            return b""

    @property
    def from_address(self) -> str | None:
        """The first From address, lowercased."""
        return self.from_addresses[0] if self.from_addresses else None

    @property
    def body_text(self) -> str:
        """Every text body of this message (not of forwarded ones), with ``\\n`` line ends."""
        return "\n\n".join(self.text_bodies)

    def all_attachments(self) -> Iterator[Attachment]:
        """Yield this message's attachments, then those of its forwarded messages."""
        yield from self.attachments
        for inner in self.forwarded:
            yield from inner.all_attachments()

    def all_messages(self) -> Iterator["ParsedMessage"]:
        """Yield this message, then its forwarded messages, depth first."""
        yield self
        for inner in self.forwarded:
            yield from inner.all_messages()


def parse_message(raw: bytes, limits: ReadingLimits | None = None) -> ParsedMessage:
    """Parse ``raw`` and decode every header, body and attachment it contains.

    With ``limits``, the part tree is checked before anything is decoded. Raises
    MalformedMessageError when the bytes contain no header at all, or nest parts too deeply
    for the parser, and monitor.limits.LimitExceeded when the tree is past a limit.
    """
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
        if not message.keys():
            detail = "no header lines found: the bytes are not an email message"
            raise MalformedMessageError(detail)
        if limits is not None:
            check_structure(message, limits)
        return _parsed(message, depth=0, raw=raw)
    except RecursionError as exc:
        detail = "MIME parts are nested too deeply to parse"
        raise MalformedMessageError(detail) from exc


def _parsed(message: Message, depth: int, raw: bytes | None = None) -> ParsedMessage:
    collector = _PartCollector(depth)
    collector.collect(message)
    return ParsedMessage(
        subject=decode_header_text(message.get("Subject")),
        from_addresses=addresses_in(message.get_all("From", [])),
        to_addresses=addresses_in(message.get_all("To", [])),
        date=parse_header_date(message.get("Date")),
        message_id=strip_angle_brackets(message.get("Message-ID")),
        in_reply_to=strip_angle_brackets(message.get("In-Reply-To")),
        references=tuple(_MESSAGE_ID.findall(_header_str(message.get("References")) or "")),
        text_bodies=tuple(collector.bodies),
        attachments=tuple(collector.attachments),
        forwarded=tuple(collector.forwarded),
        defects=tuple(collector.defects),
        raw=raw,
        source=message if raw is None else None,
    )


class _PartCollector:
    """Walks one message's parts, stopping at forwarded messages, which get their own parse."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bodies: list[str] = []
        self.attachments: list[Attachment] = []
        self.forwarded: list[ParsedMessage] = []
        self.defects: list[str] = []

    def collect(self, part: Message) -> None:
        self.defects.extend(type(defect).__name__ for defect in part.defects)
        content_type = part.get_content_type()
        if content_type in FORWARDED_CONTENT_TYPES:
            self._collect_forwarded(part)
        elif content_type == "multipart/alternative":
            self._collect_alternative(part)
        elif part.is_multipart():
            for child in _children(part):
                self.collect(child)
        elif _is_body(part):
            self.bodies.append(_body_text(part))
        else:
            self._collect_attachment(part)

    def _collect_forwarded(self, part: Message) -> None:
        if self.depth >= MAX_FORWARD_DEPTH:
            self.defects.append("ForwardedTooDeep")
            return

        inner = [child for child in _children(part) if child.keys()]
        if inner:
            self.forwarded.extend(_parsed(message, self.depth + 1) for message in inner)
            return

        data = _encoded_forward_bytes(part)
        parsed = _parse_attached_message(data, self.depth + 1)
        if parsed is not None:
            self.forwarded.append(parsed)
        else:
            name = decode_filename(part)
            self.attachments.append(Attachment(name, part.get_content_type(), data))

    def _collect_alternative(self, part: Message) -> None:
        """Keep the plain text of an alternative when it has one, else its HTML as text."""
        children = _children(part)
        plain = [child for child in children if child.get_content_type() == "text/plain"]
        for child in children:
            if plain and child.get_content_type() == "text/html":
                continue
            self.collect(child)

    def _collect_attachment(self, part: Message) -> None:
        filename = decode_filename(part)
        data = _payload_bytes(part)
        if filename and filename.lower().endswith(".eml") and self.depth < MAX_FORWARD_DEPTH:
            inner = _parse_attached_message(data, self.depth + 1)
            if inner is not None:
                self.forwarded.append(inner)
                return
        self.attachments.append(Attachment(filename, part.get_content_type(), data))


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _is_body(part: Message) -> bool:
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    if part.get_content_disposition() == "attachment":
        return False
    return decode_filename(part) is None


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _encoded_forward_bytes(part: Message) -> bytes:
    """Return the bytes of a forwarded message whose part was transfer-encoded.

    RFC 2046 allows only 7bit, 8bit or binary for message/rfc822, so the parser does not
    decode it and finds a message without headers. Some clients base64-encode it anyway.
    """
    text = "".join(str(child.get_payload()) for child in _children(part))
    # Raw 8-bit bytes come back as surrogates or, after re-serializing, as characters.
    data = text.encode("utf-8", "surrogateescape")
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(data)
        except binascii.Error:
            return data
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


def _parse_attached_message(data: bytes, depth: int) -> ParsedMessage | None:
    try:
        message = BytesParser(policy=compat32).parsebytes(data)
    except RecursionError:
        return None
    if not message.keys():
        return None
    return _parsed(message, depth, raw=data)


def _body_text(part: Message) -> str:
    data = _payload_bytes(part)
    text = decode_bytes(data, part.get_param("charset"))
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    return text.replace("\r\n", "\n")


def decode_bytes(data: bytes, charset: object) -> str:
    """Decode ``data`` with its declared charset, then UTF-8, then Windows-1252.

    An unknown, empty or wrong charset falls through to the next one. When none decodes
    cleanly, the first usable charset decodes with replacement characters.
    """
    candidates = [*_declared_charsets(charset), *FALLBACK_CHARSETS]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode(candidates[0] if _known_charset(candidates[0]) else "utf-8", "replace")


def _declared_charsets(charset: object) -> list[str]:
    if isinstance(charset, tuple):
        # An RFC 2231 charset parameter: (charset, language, value).
        charset = charset[2]
    if not isinstance(charset, str):
        return []

    name = charset.strip().strip('"').lower()
    if not name or name in ("unknown-8bit", "x-unknown"):
        return []
    if name in _WINDOWS_1252_LABELS:
        return ["cp1252", "latin-1"]
    return [name]


def _known_charset(name: str) -> bool:
    try:
        b"".decode(name)
    except LookupError:
        return False
    return True


def _header_str(value: object) -> str | None:
    """Return a raw header value as text, decoding raw 8-bit bytes with the fallbacks."""
    if value is None:
        return None
    if isinstance(value, Header):
        return "".join(_decode_chunk(chunk, charset) for chunk, charset in decode_header(value))
    text = str(value)
    if any("\udc80" <= char <= "\udcff" for char in text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), None)
    return text


def decode_header_text(value: object) -> str | None:
    """Decode a header value: RFC 2047 encoded words, raw 8-bit bytes and line folding.

    Returns None for a missing header. A malformed encoded word is kept as it is.
    """
    text = _header_str(value)
    if text is None:
        return None

    unfolded = _LINE_BREAK.sub("", text)
    if "=?" not in unfolded:
        return unfolded.strip()
    try:
        chunks = decode_header(unfolded)
    except (HeaderParseError, ValueError):
        return unfolded.strip()
    return "".join(_decode_chunk(chunk, charset) for chunk, charset in chunks).strip()


def _decode_chunk(chunk: str | bytes, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    return decode_bytes(chunk, charset)


def decode_filename(part: Message) -> str | None:
    """Return the part's file name, decoded from RFC 2231 or RFC 2047 form, or None.

    The name comes from Content-Disposition ``filename`` or, failing that, Content-Type
    ``name``. RFC 2047 is not allowed in parameters, but mail clients write it in quotes.
    """
    try:
        filename = part.get_filename()
    except (LookupError, UnicodeError, ValueError, TypeError):
        # TypeError: RFC 2231 continuations mixed with an unnumbered part (filename*0=...;
        # filename*=...) make the standard library compare None with an int.
        filename = _name_parameter(part)
    if filename is None:
        return None

    decoded = _header_str(filename) or ""
    if _ENCODED_WORD.search(decoded):
        decoded = decode_header_text(decoded) or ""
    return decoded.strip() or None


def _name_parameter(part: Message) -> str | None:
    """Return the Content-Type ``name`` parameter, or None when it cannot be read either."""
    try:
        name = part.get_param("name")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return name if isinstance(name, str) else None


def addresses_in(values: list[str]) -> tuple[str, ...]:
    """Return the lowercased addresses in address header values, in order."""
    texts = [_header_str(value) or "" for value in values]
    found = []
    for _name, address in getaddresses(texts):
        cleaned = address.strip().lower()
        if "@" in cleaned:
            found.append(cleaned)
    return tuple(found)


def parse_header_date(value: object) -> datetime | None:
    """Parse a Date header into an aware UTC datetime; None when missing or invalid.

    A date with the ``-0000`` zone (UTC with no local offset known), or with no zone at all,
    counts as UTC. Dates that RFC 5322 does not allow but mail software writes, with Spanish
    or Catalan day and month names or a zone name such as COT or CET, are read by
    ``monitor.timestamps.parse_printed_time``.
    """
    text = _header_str(value)
    if not text:
        return None
    text = collapse_whitespace(text)
    if _has_standard_zone(text):
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    return parse_printed_time(text, UTC)


def _has_standard_zone(text: str) -> bool:
    """Return whether the date ends with a zone that email.utils reads, or with no zone."""
    last = text.rsplit(" ", 1)[-1]
    if _NUMERIC_ZONE.match(last) or last.upper() in _RFC5322_ZONES:
        return True
    # A final token with digits is the time itself (no zone); a word is an unknown zone name.
    return any(char.isdigit() for char in last)


def strip_angle_brackets(value: object) -> str | None:
    """Return the Message-ID inside ``<...>``, or the stripped value when it has no brackets."""
    text = _header_str(value)
    if text is None:
        return None
    match = _MESSAGE_ID.search(text)
    if match is not None:
        return match.group(1)
    return text.strip().strip("<>").strip() or None


class _HtmlText(HTMLParser):
    """Collects the text of an HTML body, one line per block element."""

    _BLOCKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table", "td"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    """Return the visible text of an HTML body, with a line break at each block element."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).splitlines())
    return "\n".join(line for line in lines if line)
