"""A datagram socket that plays systemd's part: it receives ``sd_notify`` messages in tests."""

import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

DEFAULT_WAIT = 60.0


class NotifyListener:
    """Binds ``NOTIFY_SOCKET`` at a path, or in the abstract namespace when ``abstract`` is set.

    ``messages`` keeps every datagram received so far, each as a dict of its fields.
    """

    def __init__(self, folder: Path, abstract: bool = False) -> None:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"acuse-test-{time.monotonic_ns()}"
            self._socket.bind(b"\0" + name.encode())
            self.address = f"@{name}"
        else:
            path = folder / "notify.sock"
            self._socket.bind(str(path))
            self.address = str(path)
        self.messages: list[dict[str, str]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def environment(self) -> dict[str, str]:
        """The variables that point a child process at this socket."""
        return {"NOTIFY_SOCKET": self.address}

    def receive(self, timeout: float) -> dict[str, str] | None:
        """Return the next message within ``timeout`` seconds, or None."""
        self._socket.settimeout(timeout)
        try:
            data = self._socket.recv(65536)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(message)
        return message

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = DEFAULT_WAIT
    ) -> dict[str, str]:
        """Receive messages until one matches ``predicate``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is not None and predicate(message):
                return message
        seen = [sorted(message) for message in self.messages[-10:]]
        message = f"no matching notification within {timeout} s; last ones: {seen}"
        raise AssertionError(message)

    def wait_for_field(
        self, key: str, value: str = "1", timeout: float = DEFAULT_WAIT
    ) -> dict[str, str]:
        """Receive messages until one has ``key=value``."""
        return self.wait_for(lambda message: message.get(key) == value, timeout)

    def count(self, key: str) -> int:
        """How many messages received so far have the field ``key``."""
        return sum(1 for message in self.messages if key in message)

    def close(self) -> None:
        self._socket.close()
