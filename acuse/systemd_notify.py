"""The systemd notification protocol: state lines sent as one datagram to ``$NOTIFY_SOCKET``.

systemd sets ``NOTIFY_SOCKET`` for a ``Type=notify`` service. The value is a file-system path
or, when it starts with ``@``, a name in the abstract socket namespace (the ``@`` stands for the
leading NUL byte). Each message is newline-separated ``KEY=VALUE`` lines (sd_notify(3)).
Without ``NOTIFY_SOCKET`` every call does nothing, so acuse runs the same outside systemd.

The watchdog is on when ``WATCHDOG_USEC`` is set and ``WATCHDOG_PID``, if set, is this process;
the service must then send ``WATCHDOG=1`` more often than every ``WATCHDOG_USEC`` microseconds.
"""

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import timedelta

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
# A full receive queue blocks a datagram send; the daemon must not hang on systemd.
SEND_TIMEOUT_SECONDS = 1.0
FAILURE_LOG_INTERVAL_SECONDS = 60.0
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"


def notify_address(value: str) -> str | bytes:
    """Return the socket address for a ``NOTIFY_SOCKET`` value, abstract names included."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(environ: Mapping[str, str] | None = None) -> timedelta | None:
    """Return the watchdog timeout systemd set for this process, or None when it is off."""
    environ = os.environ if environ is None else environ
    usec = environ.get(WATCHDOG_USEC_ENV, "")
    pid = environ.get(WATCHDOG_PID_ENV, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return timedelta(microseconds=int(usec))


class SystemdNotifier:
    """Sends state changes to systemd; a failed send is logged and the service keeps running."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        value = environ.get(NOTIFY_SOCKET_ENV)
        self._address = notify_address(value) if value else None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._last_failure_log = float("-inf")

    @property
    def enabled(self) -> bool:
        """Whether systemd asked for notifications."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up finished."""
        return self.notify(READY="1", STATUS=status)

    def reloading(self) -> bool:
        """Tell systemd that the configuration is being reloaded; ``ready()`` ends the reload."""
        # MONOTONIC_USEC lets systemd 253 and later match this message to the reload request.
        return self.notify(RELOADING="1", MONOTONIC_USEC=str(time.monotonic_ns() // 1000))

    def status(self, text: str) -> bool:
        """Set the one-line status that ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Tell systemd that the service is alive."""
        return self.notify(WATCHDOG="1")

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd that the service is shutting down."""
        return self.notify(STOPPING="1", STATUS=status)

    def notify(self, **fields: str | None) -> bool:
        """Send ``KEY=VALUE`` lines for the fields that are not None; return whether it was sent.

        A status text with line breaks is joined into one line, since a line break ends a field.
        """
        if self._address is None:
            return False
        lines = [
            f"{key}={' '.join(value.splitlines())}"
            for key, value in fields.items()
            if value is not None
        ]
        payload = "\n".join(lines).encode()
        try:
            with self._lock:
                self._connection().sendto(payload, self._address)
        except OSError as exc:
            self._log_failure(fields, exc)
            return False
        return True

    def _log_failure(self, fields: dict[str, str | None], exc: OSError) -> None:
        """Log the first failed send, then at most one line a minute with the count."""
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log < FAILURE_LOG_INTERVAL_SECONDS:
            return
        self._last_failure_log = now
        log.error(
            "systemd notification failed",
            extra={
                "fields": ",".join(sorted(fields)),
                "error": str(exc) or type(exc).__name__,
                "failures": self._failures,
            },
        )

    def close(self) -> None:
        """Close the datagram socket."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _connection(self) -> socket.socket:
        if self._socket is None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.settimeout(SEND_TIMEOUT_SECONDS)
        return self._socket
