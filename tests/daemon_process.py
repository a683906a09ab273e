"""Running ``acuse run`` as systemd would, for tests: a config file, a NOTIFY_SOCKET, a database."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acuse.demo import SAMPLES_DIR
from tests.acuse_process import spawn_acuse
from tests.dovecot import DovecotServer, MailUser
from tests.notify_socket import NotifyListener

WATCHDOG_USEC = "2000000"
WAIT = 60.0
STOP_WAIT = 60.0


def sample(name: str) -> bytes:
    """The raw bytes of one demo evidence message."""
    return (SAMPLES_DIR / "evidencias" / name).read_bytes()


def project_toml(code: str, mailbox: dict[str, Any], extra: str = "") -> str:
    """A ``[[projects]]`` table with a mailbox section."""
    lines = ["[[projects]]", f'code = "{code}"', f'name = "Proyecto {code}"', extra, ""]
    lines.append("[projects.mailbox]")
    for key, value in mailbox.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def dovecot_mailbox(dovecot: DovecotServer, user: MailUser, **overrides: Any) -> dict[str, Any]:
    """Mailbox settings that reach ``user`` over the plain listener."""
    mailbox: dict[str, Any] = {
        "host": dovecot.host,
        "port": dovecot.imap_port,
        "security": "plain",
        "username": user.name,
        "password_file": str(user.password_file),
        "timeout": "10s",
    }
    mailbox.update(overrides)
    return mailbox


def write_config(
    root: Path, projects: str, defaults: str = "", url: str = "sqlite:///acuse.db"
) -> Path:
    """Write ``acuse.toml`` in ``root`` with an archive there and a database at ``url``."""
    config = root / "acuse.toml"
    config.write_text(
        f"""
[database]
url = "{url}"

[archive]
path = "archive"

[defaults]
poll_interval = "2s"
reconcile_interval = "1h"
{defaults}

{projects}
""",
        encoding="utf-8",
    )
    return config


@dataclass
class DaemonProcess:
    """A running ``acuse run`` with its notifications and its output, read as it comes."""

    process: subprocess.Popen[str]
    notify: NotifyListener
    root: Path
    output: list[str] = field(default_factory=list)
    _readers: list[threading.Thread] = field(default_factory=list)

    def start_reading(self) -> None:
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.output.append(line.rstrip("\n"))

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def stop(self) -> int:
        """Send SIGTERM and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            tail = "\n".join(self.output[-20:])
            message = f"acuse run did not stop within {STOP_WAIT} s; last output:\n{tail}"
            raise AssertionError(message) from None
        self.notify.drain()
        for reader in self._readers:
            reader.join(5)
        return code

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        entries = []
        for line in list(self.output):
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def logged(self, message: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log_lines() if entry.get("message") == message]

    @property
    def database(self) -> Path:
        return self.root / "acuse.db"


@contextmanager
def running_daemon(
    config: Path, root: Path, *extra_args: str, env: dict[str, str] | None = None
) -> Iterator[DaemonProcess]:
    """Start ``acuse run`` with a test-owned NOTIFY_SOCKET, wait for READY, stop it at the end."""
    with NotifyListener(root) as listener:
        environment = {
            **os.environ,
            **listener.environment(),
            "WATCHDOG_USEC": WATCHDOG_USEC,
            **(env or {}),
        }
        environment.pop("WATCHDOG_PID", None)
        process = spawn_acuse(config, *extra_args, "run", env=environment)
        daemon = DaemonProcess(process, listener, root)
        daemon.start_reading()
        try:
            listener.wait_for_field("READY", timeout=WAIT)
            yield daemon
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def query(database: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run a read query on the daemon's SQLite database."""
    with sqlite3.connect(database, timeout=10) as connection:
        return list(connection.execute(sql, params))


def wait_until(condition: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll ``condition`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    message = f"timed out after {timeout} s waiting for {what or condition}"
    raise AssertionError(message)


@contextmanager
def silent_server() -> Iterator[tuple[str, int]]:
    """A listening socket that accepts connections and never sends a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()


@contextmanager
def login_hanging_server() -> Iterator[tuple[str, int]]:
    """An IMAP server that greets and answers CAPABILITY, then never answers LOGIN."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    connections: list[socket.socket] = []

    def converse(connection: socket.socket) -> None:
        connection.sendall(b"* OK ready\r\n")
        with connection.makefile("rb") as lines:
            for line in lines:
                tag, _, command = line.decode().partition(" ")
                if command.upper().startswith("CAPABILITY"):
                    reply = f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
                    connection.sendall(reply.encode())

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except TimeoutError:
                continue
            connections.append(connection)
            threading.Thread(target=converse, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        stop.set()
        thread.join(5)
        for connection in connections:
            connection.close()
        listener.close()
