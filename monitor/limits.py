"""Ceilings on one message, checked before it is parsed and while its parts are walked.

The cheap checks on the raw bytes run first: total size, the size of the header section, and
the number of part delimiters of every boundary that a Content-Type header declares. Once the
parser has built the part tree, ``check_structure`` counts the parts and their nesting depth
before any part is decoded. A PDF is checked by ``monitor.certificate_pdf`` (size, pages and
decompressed stream size). Each exceeded ceiling raises LimitExceeded naming the setting of
``[limits]`` that stopped it, so a quarantined message says which limit to raise if it is
genuine.
"""

import re
from email.message import Message
from enum import StrEnum

from config.errors import AcuseError
from config.provider_settings import ReadingLimits

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# A boundary parameter, quoted or not, as RFC 2046 section 5.1.1 writes it.
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)


class Limit(StrEnum):
    """A ceiling of ``[limits]``; the values are the setting names."""

    MESSAGE_BYTES = "max_message_bytes"
    HEADER_BYTES = "max_header_bytes"
    MIME_PARTS = "max_mime_parts"
    NESTING_DEPTH = "max_nesting_depth"
    PDF_BYTES = "max_pdf_bytes"
    PDF_PAGES = "max_pdf_pages"
    DECOMPRESSED_BYTES = "max_decompressed_bytes"
    CPU_SECONDS = "cpu_seconds"
    MEMORY_BYTES = "memory_bytes"
    WALL_SECONDS = "wall_seconds"


class LimitExceeded(AcuseError):
    """A message or one of its parts is past a ceiling; ``limit`` names the setting."""

    def __init__(self, limit: Limit, detail: str) -> None:
        super().__init__(f"{limit.value}: {detail}")
        self.limit = limit
        self.detail = detail


def exceeded(limit: Limit, found: int, ceiling: int, what: str) -> LimitExceeded:
    """Build the error for ``what`` (``"the message has ... bytes"``) past ``ceiling``."""
    return LimitExceeded(limit, f"{what} {found}, more than the limit of {ceiling}")


def check_raw_message(raw: bytes, limits: ReadingLimits) -> None:
    """Raise LimitExceeded when the bytes are too large to parse safely.

    Checks the total size, the header section's size and the number of part delimiters.
    Each check reads the bytes once, with no parsing.
    """
    if len(raw) > limits.max_message_bytes:
        raise exceeded(
            Limit.MESSAGE_BYTES, len(raw), limits.max_message_bytes, "message size in bytes:"
        )

    header_size = _header_size(raw, limits.max_header_bytes)
    if header_size > limits.max_header_bytes:
        raise exceeded(
            Limit.HEADER_BYTES, header_size, limits.max_header_bytes, "header size in bytes:"
        )

    delimiters = count_part_delimiters(raw, stop_after=limits.max_mime_parts)
    if delimiters > limits.max_mime_parts:
        raise exceeded(
            Limit.MIME_PARTS, delimiters, limits.max_mime_parts, "MIME part delimiters: at least"
        )


def _header_size(raw: bytes, ceiling: int) -> int:
    """Return the length of the top-level header section, searching a little past ``ceiling``."""
    window = raw[: ceiling + 4]
    end = _HEADER_END.search(window)
    if end is None:
        return len(raw)
    return end.start()


def count_part_delimiters(raw: bytes, stop_after: int) -> int:
    """Count the lines that open a part of any declared boundary, stopping past ``stop_after``.

    The count is an upper bound of the number of body parts: every part starts with such a
    line, while a closing delimiter or a stray line that only looks like one also counts.
    """
    boundaries = {
        (quoted or bare) for quoted, bare in _BOUNDARY.findall(raw) if (quoted or bare).strip()
    }
    total = 0
    for boundary in boundaries:
        pattern = re.compile(rb"(?m)^--" + re.escape(boundary.strip()))
        for _match in pattern.finditer(raw):
            total += 1
            if total > stop_after:
                return total
    return total


def check_structure(message: Message, limits: ReadingLimits) -> None:
    """Raise LimitExceeded when the parsed part tree has too many parts or nests too deeply.

    The walk uses its own stack, so a deep tree cannot exhaust Python's recursion limit.
    """
    parts = 0
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > limits.max_mime_parts:
            raise exceeded(Limit.MIME_PARTS, parts, limits.max_mime_parts, "MIME parts: at least")
        if depth > limits.max_nesting_depth:
            raise exceeded(
                Limit.NESTING_DEPTH, depth, limits.max_nesting_depth, "MIME nesting depth:"
            )
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
