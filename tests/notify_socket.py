"""A datagram socket that plays systemd's part: it receives ``sd_notify`` messages in tests."""

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

DEFAULT_WAIT = 60.0


class NotifyListener:
    """Binds ``NOTIFY_SOCKET`` at a path, or in the abstract namespace when ``abstract`` is set.

    A background thread reads every datagram as it comes, as systemd does, so the sender never
    finds the queue full. ``messages`` keeps each one as a dict of its fields.
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
        self._socket.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._claimed: set[int] = set()
        self._arrived = threading.Condition()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

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

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = DEFAULT_WAIT
    ) -> dict[str, str]:
        """Wait for a message, new or already received, that matches ``predicate``.

        Each message is returned at most once, so waiting twice for ``WATCHDOG=1`` waits for
        two pings. Fails after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for index, message in enumerate(self.messages):
                    if index not in self._claimed and predicate(message):
                        self._claimed.add(index)
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            seen = [sorted(message) for message in self.messages[-10:]]
        message_text = f"no matching notification within {timeout} s; last ones: {seen}"
        raise AssertionError(message_text)

    def wait_for_field(
        self, key: str, value: str = "1", timeout: float = DEFAULT_WAIT
    ) -> dict[str, str]:
        """Wait for a message with ``key=value``."""
        return self.wait_for(lambda message: message.get(key) == value, timeout)

    def drain(self) -> None:
        """Give datagrams already queued a moment to be read."""
        time.sleep(0.3)

    def count(self, key: str) -> int:
        """How many messages received so far have the field ``key``."""
        with self._arrived:
            return sum(1 for message in self.messages if key in message)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(5)
        self._socket.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            lines = data.decode().splitlines()
            message = dict(line.split("=", 1) for line in lines if "=" in line)
            with self._arrived:
                self.messages.append(message)
                self._arrived.notify_all()
