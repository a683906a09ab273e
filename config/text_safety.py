"""Text from mail and send logs made safe to show on a terminal or open in a spreadsheet.

Evidence, send logs and mailboxes are written by others, so their text may carry terminal
escape sequences, NUL or BEL, right-to-left overrides that reorder what a reader sees, or a
spreadsheet formula. ``escape_unsafe`` shows such characters as visible escapes, and
``spreadsheet_cell`` also stops a spreadsheet from running a cell as a formula.
"""

import re
from typing import Any

# The C0 and C1 control characters and DEL. Then the bidirectional formatting characters of
# Unicode Standard Annex #9 (LRM, RLM, ALM, the embeddings, overrides and isolates). Last, the
# line and paragraph separators, which break a line where a single-line value is expected.
UNSAFE_RANGES = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
UNSAFE_CHARACTERS = re.compile(f"[{UNSAFE_RANGES}]")
# A spreadsheet reads a cell that starts with one of these as a formula (the OWASP
# recommendation for CSV injection lists the same characters).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_unsafe(text: str) -> str:
    """Replace each unsafe character with a visible Python-style escape such as ``\\x1b``."""
    return UNSAFE_CHARACTERS.sub(_escape, text)


def has_unsafe_characters(text: str) -> bool:
    """Return whether ``text`` contains a control, bidirectional or line separator character."""
    return UNSAFE_CHARACTERS.search(text) is not None


def spreadsheet_cell(value: Any) -> Any:
    """Make a CSV cell safe to open in a spreadsheet; values other than text pass unchanged.

    Unsafe characters are escaped, and text that a spreadsheet would run as a formula gets a
    leading apostrophe, which spreadsheets show as text and do not evaluate.
    """
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        value = "'" + value
    return escape_unsafe(value)
