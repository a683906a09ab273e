"""A real Dovecot IMAP server for tests: one per test session, on 127.0.0.1, started as root.

Register the plugin with ``pytest_plugins = ["tests.dovecot"]``. Fixtures:

- ``dovecot``: the session's DovecotServer. ``host``, ``imap_port`` (plain and STARTTLS),
  ``imaps_port`` (implicit TLS) and ``ca_file`` (the self-signed certificate, its own CA) tell
  tests where to connect. Its methods create users and folders, APPEND messages, read flags and
  change a folder's UIDVALIDITY.
- ``mail_user``: a fresh MailUser (``name``, ``password``, ``home``, ``password_file``) for
  each test, so tests never share a mailbox.

Any test that uses these fixtures, or ``dovecot_oauth2``, gets the ``dovecot`` mark, so
``-m "not dovecot"`` skips them.

The server is Debian 12's Dovecot 2.3 (package ``dovecot-imapd``) run as ``dovecot -F -c FILE``
with every path (base_dir, state_dir, log, homes) inside a temp folder, which the session
removes at its end. Mail belongs to ``nobody`` (uid 65534). When a test that used the server
fails, the last lines of the server log are added to its report.
"""

import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pytest
from imapclient import IMAPClient

from config.mailbox_settings import MailboxSettings
from config.types import Security

HOST = "127.0.0.1"
MAIL_UID = 65534
MAIL_GID = 65534
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
CLIENT_TIMEOUT = 10.0
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
APPEND_CHUNK = 200
# The fixtures that start a Dovecot; "dovecot_oauth2" lives in tests/oauth2_provider.py.
SERVER_FIXTURES = {"dovecot", "dovecot_oauth2"}
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]")

CONFIG = Template("""\
base_dir = $root/run
state_dir = $root/state
log_path = $root/log/dovecot.log
protocols = imap
listen = $host
shutdown_clients = yes

ssl = yes
ssl_cert = <$cert
ssl_key = <$key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = $auth_mechanisms
# A failed login would otherwise wait 2 seconds, and each later login from 127.0.0.1 would wait
# up to 15 seconds more (the auth penalty, which a socket with mode 0 turns off).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

# The idle-poll benchmark keeps hundreds of sessions open at once, and each is one imap
# process; the defaults (100 processes, 1000 clients a service) would refuse the rest.
default_process_limit = 1000
default_client_limit = 3000

first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:~/Maildir
# Test mail needs no durability, and an fsync per APPEND makes loading a mailbox slow.
mail_fsync = never

# One passwd-file per user: Dovecot rereads a changed file at most once a second, but opens a
# new file at once, so a user created a moment ago can log in.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $users/%u$passwd_mechanisms
}
${oauth2_passdb}userdb {
  driver = passwd-file
  args = username_format=%u $users/%u
}

service imap-login {
  inet_listener imap {
    address = $host
    port = $imap_port
  }
  inet_listener imaps {
    address = $host
    port = $imaps_port
    ssl = yes
  }
}
""")


# The oauth2 passdb checks XOAUTH2 and OAUTHBEARER tokens; the passwd-file one keeps passwords.
OAUTH2_MECHANISMS = "plain login xoauth2 oauthbearer"
OAUTH2_PASSDB = """passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $root/dovecot-oauth2.conf.ext
}
"""
OAUTH2_BACKEND = Template("""\
introspection_mode = post
introspection_url = $introspection_url
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
""")


@dataclass(frozen=True)
class MailUser:
    """A Dovecot user. ``password_file`` contains the password, for code that reads secrets."""

    name: str
    password: str
    home: Path
    password_file: Path


class DovecotServer:
    """A Dovecot master process and its throwaway configuration under ``root``.

    With ``oauth2_introspection_url``, the server also accepts XOAUTH2 and OAUTHBEARER tokens,
    which its ``oauth2`` passdb checks by POSTing them to that URL.
    """

    def __init__(
        self,
        root: Path,
        dovecot: str,
        doveadm: str,
        *,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        self.root = root
        self.oauth2_introspection_url = oauth2_introspection_url
        self.host = HOST
        self.imap_port = _free_port()
        self.imaps_port = _free_port()
        self.config_file = root / "dovecot.conf"
        self.ca_file = root / "tls" / "cert.pem"
        self.log_file = root / "log" / "dovecot.log"
        self._key_file = root / "tls" / "key.pem"
        self._users = root / "users"
        self._homes = root / "homes"
        self._secrets = root / "secrets"
        self._dovecot_program = dovecot
        self._doveadm_program = doveadm
        self._process: subprocess.Popen[bytes] | None = None
        self._user_numbers = itertools.count(1)

    def start(self) -> None:
        """Write the configuration and certificate, start Dovecot and wait for its greeting."""
        for folder in ("run", "state", "log", "tls"):
            (self.root / folder).mkdir()
        self._homes.mkdir(mode=0o755)
        self._secrets.mkdir(mode=0o700)
        # Dovecot reads the users' passwd-files as its unprivileged "dovecot" user.
        self._users.mkdir(mode=0o755)
        self._write_certificate()
        self._write_config()

        stderr = (self.root / "log" / "stderr.log").open("wb")
        with stderr:
            self._process = subprocess.Popen(
                [self._dovecot_program, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """Stop the master process by the PID in ``master.pid``, and kill it when it hangs."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        pid_file = self.root / "run" / "master.pid"
        pid = int(pid_file.read_text().strip()) if pid_file.exists() else process.pid
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def create_user(self, name: str | None = None) -> MailUser:
        """Add a user with a new home and a random password, which can log in at once.

        ``name`` defaults to ``userN``; give an address to imitate a hosted mailbox's user name.
        """
        name = name or f"user{next(self._user_numbers)}"
        password = f"pw-{secrets.token_hex(8)}"
        home = self._homes / name
        home.mkdir()
        os.chown(home, MAIL_UID, MAIL_GID)

        password_file = self._secrets / f"{name}.password"
        password_file.write_text(password + "\n", encoding="utf-8")
        entry = f"{name}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{home}::\n"
        (self._users / name).write_text(entry, encoding="utf-8")
        return MailUser(name=name, password=password, home=home, password_file=password_file)

    def connect(self, user: MailUser) -> IMAPClient:
        """Return a client logged in as ``user`` over the plain listener. Log it out after use."""
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=CLIENT_TIMEOUT)
        client.login(user.name, user.password)
        return client

    def create_folder(self, user: MailUser, folder: str) -> None:
        """Create ``folder`` in the mailbox of ``user``."""
        with self.connect(user) as client:
            client.create_folder(folder)

    def append(
        self,
        user: MailUser,
        folder: str,
        messages: Iterable[bytes],
        flags: tuple[bytes, ...] = (),
    ) -> list[int]:
        """APPEND each message to ``folder`` with ``flags`` and return the UIDs the server gave.

        Messages go in MULTIAPPEND commands of up to APPEND_CHUNK messages, which loads a
        mailbox several times faster than one APPEND per message.
        """
        uids: list[int] = []
        pending = list(messages)
        with self.connect(user) as client:
            for start in range(0, len(pending), APPEND_CHUNK):
                chunk = [
                    {"msg": raw, "flags": flags} for raw in pending[start : start + APPEND_CHUNK]
                ]
                _, reply = client.multiappend(folder, chunk)
                uids.extend(_appended_uids(reply[0]))
        return uids

    def expunge(self, user: MailUser, folder: str, uids: list[int]) -> None:
        """Delete the messages with ``uids`` from ``folder``, as another mail client would."""
        with self.connect(user) as client:
            client.select_folder(folder)
            client.delete_messages(uids)
            client.uid_expunge(uids)

    def kick(self, user: MailUser) -> None:
        """Disconnect every IMAP session of ``user``, as a server restart or idle timeout would."""
        self._doveadm("kick", user.name)

    def break_password_lookup(self, user: MailUser) -> None:
        """Make Dovecot unable to read the user's passwd-file, so logins fail temporarily."""
        (self._users / user.name).chmod(0o000)

    def flags(self, user: MailUser, folder: str) -> dict[int, tuple[bytes, ...]]:
        """Return the flags of every message in ``folder``, read without changing them."""
        with self.connect(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return {}
            response = client.fetch(uids, ["FLAGS"])
        return {uid: tuple(items[b"FLAGS"]) for uid, items in response.items()}

    def uidvalidity(self, user: MailUser, folder: str) -> int:
        """Return the UIDVALIDITY of ``folder`` as ``doveadm mailbox status`` reports it."""
        output = self._doveadm("mailbox", "status", "-u", user.name, "uidvalidity", folder)
        match = re.search(r"uidvalidity=(\d+)", output)
        assert match is not None, f"doveadm printed no uidvalidity: {output!r}"
        return int(match.group(1))

    def change_uidvalidity(self, user: MailUser, folder: str) -> int:
        """Give ``folder`` a new UIDVALIDITY, keeping its messages and UIDs, and return it."""
        new_value = self.uidvalidity(user, folder) + 1
        self._doveadm(
            "mailbox", "update", "-u", user.name, "--uid-validity", str(new_value), folder
        )
        return new_value

    def mailbox_settings(
        self,
        user: MailUser,
        *,
        security: Security = Security.PLAIN,
        folder: str = "INBOX",
        **overrides: Any,
    ) -> MailboxSettings:
        """Return settings that reach ``user``'s ``folder`` on this server.

        TLS uses the implicit-TLS port; plain and STARTTLS use the plain one. TLS and STARTTLS
        trust ``ca_file`` unless ``overrides`` sets ``ca_file`` itself.
        """
        port = self.imaps_port if security is Security.TLS else self.imap_port
        fields: dict[str, Any] = {
            "host": self.host,
            "port": port,
            "security": security,
            "username": user.name,
            "password_file": str(user.password_file),
            "folder": folder,
            "ca_file": None if security is Security.PLAIN else self.ca_file,
        }
        fields.update(overrides)
        return MailboxSettings(**fields)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the server log and of the master's stderr."""
        parts: list[str] = []
        for path in (self.log_file, self.root / "log" / "stderr.log"):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                parts.append(f"--- {path.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def _doveadm(self, *arguments: str) -> str:
        command = [self._doveadm_program, "-c", str(self.config_file), *arguments]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{' '.join(command)} failed: {result.stderr.strip()}"
        return result.stdout

    def _write_certificate(self) -> None:
        # A self-signed certificate with a SAN for 127.0.0.1 serves as its own trust root.
        command = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=acuse test Dovecot",
            "-addext", f"subjectAltName=IP:{HOST},DNS:localhost",
            "-keyout", str(self._key_file), "-out", str(self.ca_file),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"openssl could not create the test certificate: {result.stderr}")

    def _write_config(self) -> None:
        oauth2 = self.oauth2_introspection_url is not None
        if oauth2:
            backend = OAUTH2_BACKEND.substitute(introspection_url=self.oauth2_introspection_url)
            (self.root / "dovecot-oauth2.conf.ext").write_text(backend, encoding="utf-8")
        text = CONFIG.substitute(
            auth_mechanisms=OAUTH2_MECHANISMS if oauth2 else "plain login",
            passwd_mechanisms="\n  mechanisms = plain login" if oauth2 else "",
            oauth2_passdb=Template(OAUTH2_PASSDB).substitute(root=self.root) if oauth2 else "",
            root=self.root,
            host=self.host,
            cert=self.ca_file,
            key=self._key_file,
            uid=MAIL_UID,
            gid=MAIL_GID,
            users=self._users,
            imap_port=self.imap_port,
            imaps_port=self.imaps_port,
        )
        self.config_file.write_text(text, encoding="utf-8")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                pytest.fail(
                    f"Dovecot exited with status {self._process.returncode} at start.\n"
                    f"{self.log_tail()}",
                    pytrace=False,
                )
            if _greets(self.host, self.imap_port) and _accepts(self.host, self.imaps_port):
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"Dovecot did not greet on {self.host}:{self.imap_port} within {START_TIMEOUT} s.\n"
            f"{self.log_tail()}",
            pytrace=False,
        )


def _appended_uids(reply: bytes) -> list[int]:
    """Return the UIDs of an APPENDUID response code, such as ``[APPENDUID 7 1:3,5]``."""
    match = _APPENDUID.search(reply)
    assert match is not None, f"APPEND reply without APPENDUID: {reply!r}"
    uids: list[int] = []
    for part in match.group(2).split(b","):
        first, _, last = part.partition(b":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids


def _free_port() -> int:
    # The port is free now; another process could take it before Dovecot binds it, which
    # on a test machine is rare enough to accept.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            return connection.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _find_programs() -> tuple[str, str]:
    dovecot = shutil.which("dovecot", path=SEARCH_PATH)
    doveadm = shutil.which("doveadm", path=SEARCH_PATH)
    if dovecot is None or doveadm is None:
        pytest.fail(
            "Dovecot is not installed, so the IMAP tests cannot run. Run `make test`, which "
            "installs Debian's dovecot-imapd, or `apt-get install -y dovecot-imapd`.",
            pytrace=False,
        )
    if shutil.which("openssl") is None:
        pytest.fail(
            "openssl is not installed, so the test certificate cannot be made. "
            "Install it with `apt-get install -y openssl`.",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            "The Dovecot tests start Dovecot as root so that it can switch to the mail user; "
            'run them as root, or deselect them with -m "not dovecot".',
            pytrace=False,
        )
    return dovecot, doveadm


def running_server(oauth2_introspection_url: str | None = None) -> Iterator[DovecotServer]:
    """Start a Dovecot on 127.0.0.1 in a new temp folder, yield it, then stop it and clean up."""
    dovecot_program, doveadm_program = _find_programs()
    # Dovecot's unprivileged processes must traverse the folder, so it cannot live in pytest's
    # temp folder, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="acuse-dovecot-"))
    root.chmod(0o755)
    server = DovecotServer(
        root,
        dovecot_program,
        doveadm_program,
        oauth2_introspection_url=oauth2_introspection_url,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_dovecot() -> Iterator[DovecotServer]:
    """Start a plain Dovecot for a script such as a benchmark; stop it when the block ends."""
    yield from running_server()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """Start the session's Dovecot on 127.0.0.1 and stop it at the end."""
    yield from running_server()


@pytest.fixture
def mail_user(dovecot: DovecotServer) -> MailUser:
    """A new Dovecot user with an empty mailbox."""
    return dovecot.create_user()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.dovecot)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    for name in sorted(SERVER_FIXTURES):
        server = getattr(item, "funcargs", {}).get(name)
        if report.failed and isinstance(server, DovecotServer):
            report.sections.append((f"{name} log (last lines)", server.log_tail()))
    return report
