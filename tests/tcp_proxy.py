"""A TCP proxy on 127.0.0.1 that breaks an IMAP conversation at a chosen response boundary.

The proxy relays bytes between a client and a server. It reads the server's side as IMAP:
the greeting and each tagged completion (``A1 OK``, ``A1 NO``, ``A1 BAD``) end a response,
and literals (``{123}`` at the end of a line, then 123 bytes) are skipped, so a message body
never counts. After the ``fault_after``-th boundary has reached the client, the proxy either
closes both sockets (``Fault.CUT``), or stops relaying in both directions while keeping the
sockets open (``Fault.STALL``), as a server that hangs does. Boundaries are counted over all
connections, in order. ``fault_after=0`` faults before the greeting.

Plain IMAP only: with TLS the proxy would see no boundaries.
"""

import contextlib
import re
import socket
import threading
from enum import StrEnum
from types import TracebackType
from typing import Self

_TAGGED_COMPLETION = re.compile(rb"^[A-Za-z0-9.]+ (OK|NO|BAD)\b")
_GREETING = re.compile(rb"^\* (OK|PREAUTH|BYE)\b")
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")


class Fault(StrEnum):
    """What the proxy does once the chosen boundary has passed."""

    CUT = "cut"
    STALL = "stall"


class FaultProxy:
    """A proxy to ``target_port`` that faults after ``fault_after`` responses.

    With ``fault_after`` None it relays everything and only counts the boundaries.
    """

    def __init__(
        self, target_port: int, fault: Fault = Fault.CUT, fault_after: int | None = None
    ) -> None:
        self.target = ("127.0.0.1", target_port)
        self.fault = fault
        self.fault_after = fault_after
        self.boundaries = 0
        self.faulted = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and close every socket, stalled ones included."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            if self.fault_after == 0 and self._fault_now(client, server):
                continue
            threading.Thread(target=self._relay_client, args=(client, server), daemon=True).start()
            threading.Thread(target=self._relay_server, args=(server, client), daemon=True).start()

    def _relay_client(self, client: socket.socket, server: socket.socket) -> None:
        while not self._closed.is_set():
            data = _receive(client)
            if not data or self.faulted.is_set():
                break
            server.sendall(data)
        if not self.faulted.is_set():
            _close(server)

    def _relay_server(self, server: socket.socket, client: socket.socket) -> None:
        scanner = _ResponseScanner()
        while not self._closed.is_set():
            data = _receive(server)
            if not data or self.faulted.is_set():
                break
            for chunk, is_boundary in scanner.feed(data):
                if self.faulted.is_set():
                    return
                # Count before sending, so the count includes every reply a client has received.
                if is_boundary:
                    self.boundaries += 1
                client.sendall(chunk)
                at_fault = is_boundary and self.boundaries == self.fault_after
                if at_fault and self._fault_now(client, server):
                    return
        if not self.faulted.is_set():
            _close(client)

    def _fault_now(self, client: socket.socket, server: socket.socket) -> bool:
        self.faulted.set()
        if self.fault is Fault.CUT:
            _close(client)
            _close(server)
        return True


class _ResponseScanner:
    """Splits the server's byte stream after each line that ends a response."""

    def __init__(self) -> None:
        self._line = b""
        self._literal_left = 0
        self._first_line = True

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Return ``data`` cut into chunks, each flagged when it ends on a boundary."""
        chunks: list[tuple[bytes, bool]] = []
        start = 0
        position = 0
        while position < len(data):
            if self._literal_left:
                skipped = min(self._literal_left, len(data) - position)
                self._literal_left -= skipped
                position += skipped
                continue
            newline = data.find(b"\n", position)
            if newline < 0:
                self._line += data[position:]
                break
            self._line += data[position : newline + 1]
            position = newline + 1
            if self._ends_response(self._line):
                chunks.append((data[start:position], True))
                start = position
            self._line = b""
        if start < len(data):
            chunks.append((data[start:], False))
        return chunks

    def _ends_response(self, line: bytes) -> bool:
        literal = _LITERAL.search(line)
        if literal is not None:
            self._literal_left = int(literal.group(1))
            return False
        if self._first_line:
            self._first_line = False
            return bool(_GREETING.match(line))
        return bool(_TAGGED_COMPLETION.match(line))


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
