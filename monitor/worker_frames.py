"""The frames that the reader pool and its worker processes exchange over pipes.

A frame is an 8-byte big-endian length, then a pickle of that length. Both ends are acuse's
own code, so unpickling a frame runs no foreign pickle. This module imports no parser, so the
process that hands messages to the workers reads their replies without loading one.
"""

import pickle
import struct
from typing import IO, Any

_FRAME_HEADER = struct.Struct(">Q")


class EOFFrame(EOFError):
    """The other end closed the stream before a whole frame arrived."""


def write_frame(stream: IO[bytes], value: object) -> None:
    """Write ``value`` as one frame and flush it."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """Read one frame; raise EOFFrame when the stream ends first."""
    header = _read_exactly(stream, _FRAME_HEADER.size)
    (length,) = _FRAME_HEADER.unpack(header)
    return pickle.loads(_read_exactly(stream, length))  # noqa: S301 - frames of our own worker


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFFrame
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
