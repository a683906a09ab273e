"""Provider profiles: how a certifying provider's evidence looks, and how far it is trusted.

The built-in profiles are data files in ``config/providers``; the configuration file can
override any key under ``[providers.NAME]``.
"""

import os
import tomllib
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from threading import Lock
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
)

from config.i18n import _
from config.types import (
    Duration,
    EmailAddress,
    Integer,
    Number,
    Regex,
    Section,
    TimeZoneName,
    duration_range,
)

BUILTIN_PROVIDERS_DIR = Path(__file__).parent / "providers"


class ProviderLabels(Section):
    """Certificate labels per field; each list holds the synonyms in every language."""

    certificate_id: list[str]
    sender: list[str]
    recipient: list[str]
    subject: list[str]
    message_id: list[str]
    sent_at: list[str]
    delivered_at: list[str]
    status: list[str]
    smtp_detail: list[str]
    content_hash: list[str]
    reason: list[str]


class VerifyPolicy(StrEnum):
    """What a failed authenticity check does to the evidence it concerns."""

    REQUIRE = "require"  # the evidence is unverified and never certifies a send
    WARN = "warn"  # the failure is recorded, and the evidence still counts
    OFF = "off"  # the check does not run


def _check_dkim_keys(value: dict[str, str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for name, record in value.items():
        folded = name.strip().lower().rstrip(".")
        if "._domainkey." not in folded:
            message = _(
                "invalid DKIM key name {name!r}: write the DNS name of the key record, "
                "selector._domainkey.domain, such as s2026._domainkey.lleida.net"
            ).format(name=name)
            raise ValueError(message)
        if "p=" not in record.replace(" ", ""):
            message = _(
                "invalid DKIM key record for {name!r}: paste the TXT record, "
                '"v=DKIM1; k=rsa; p=MIIB..."'
            ).format(name=name)
            raise ValueError(message)
        keys[folded] = record
    return keys


DkimKeys = Annotated[dict[str, str], AfterValidator(_check_dkim_keys)]


class ProviderProfile(Section):
    """What a certifying provider's evidence looks like. The values are data, not code.

    The trust keys decide how evidence is authenticated: ``verify_dkim`` and
    ``verify_signature`` default to ``require`` once ``trust_roots`` names a PEM file and to
    ``warn`` before. ``dkim_keys`` pins key records by their DNS name, so that verification
    needs no DNS; with ``dkim_dns`` false no key is ever looked up in DNS.
    """

    name: str
    sender_domains: list[str]
    certifying_addresses: list[EmailAddress]
    timezone: TimeZoneName
    ignore_subject_patterns: list[Regex]
    rejection_patterns: list[Regex]
    failure_patterns: list[Regex]
    subject_prefixes: list[Regex]
    labels: ProviderLabels
    verify_dkim: VerifyPolicy | None = None
    verify_signature: VerifyPolicy | None = None
    trust_roots: list[Path] = Field(default_factory=list)
    signer_pattern: Regex | None = None
    require_timestamp: bool = False
    dkim_keys: DkimKeys = Field(default_factory=dict)
    dkim_dns: bool = True
    dns_timeout: Annotated[Duration, duration_range("1s", "5m")] = timedelta(seconds=5)

    @field_validator("sender_domains")
    @classmethod
    def _lowercase_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower().strip(".") for domain in value]

    @property
    def dkim_policy(self) -> VerifyPolicy:
        """``verify_dkim``, or its default: require with trust roots, warn without."""
        return self.verify_dkim or self._default_policy()

    @property
    def signature_policy(self) -> VerifyPolicy:
        """``verify_signature``, or its default: require with trust roots, warn without."""
        return self.verify_signature or self._default_policy()

    def _default_policy(self) -> VerifyPolicy:
        return VerifyPolicy.REQUIRE if self.trust_roots else VerifyPolicy.WARN


_MIB = 1024 * 1024

MAX_DEFAULT_WORKERS = 4
"""Upper bound of the default of ``[limits] workers``. Each worker may use ``memory_bytes`` of
its own, so the bound caps the memory that the default takes on a machine with many CPUs."""


def default_reader_workers() -> int:
    """Return the number of CPUs this process may run on, from 1 to ``MAX_DEFAULT_WORKERS``.

    The count comes from the CPU affinity mask, which a container or ``taskset`` may narrow.
    Where the mask cannot be read, every CPU of the machine counts.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_DEFAULT_WORKERS))


class ReadingLimits(Section):
    """Ceilings on one message, checked before and while it is read, and on the reader process.

    A message past a size or structure limit is quarantined with the limit named. The reader
    runs in ``workers`` processes (by default one per usable CPU, at most four), each with
    ``cpu_seconds`` of CPU time per message and ``memory_bytes`` of memory above the worker's
    own footprint. A worker that stays silent for ``wall_seconds`` is stopped and replaced.
    """

    # Lleida.net accepts sends up to 20 MB; base64 adds a third, and a forward wraps it again.
    max_message_bytes: Integer = Field(default=40 * _MIB, ge=1024)
    max_header_bytes: Integer = Field(default=256 * 1024, ge=1024)
    max_mime_parts: Integer = Field(default=500, ge=1)
    max_nesting_depth: Integer = Field(default=16, ge=1)
    max_pdf_bytes: Integer = Field(default=30 * _MIB, ge=1024)
    max_pdf_pages: Integer = Field(default=2000, ge=1)
    max_decompressed_bytes: Integer = Field(default=100 * _MIB, ge=1024)
    cpu_seconds: Integer = Field(default=20, ge=1)
    memory_bytes: Integer = Field(default=1024 * _MIB, ge=16 * _MIB)
    wall_seconds: Number = Field(default=120.0, gt=0)
    workers: Integer = Field(default_factory=default_reader_workers, ge=1, le=32)


def builtin_provider(name: str) -> dict[str, Any]:
    with (BUILTIN_PROVIDERS_DIR / f"{name}.toml").open("rb") as handle:
        return tomllib.load(handle)


def builtin_provider_names() -> list[str]:
    """Names of the providers acuse ships a profile for."""
    return sorted(path.stem for path in BUILTIN_PROVIDERS_DIR.glob("*.toml"))


_Built = TypeVar("_Built")


class ProfileCache(Generic[_Built]):
    """Values built from provider profiles, one per profile object, for the latest few.

    Each entry keeps the profile itself next to its value, so the id that keys it is never
    reused while the entry lives. Thread-safe.
    """

    def __init__(self, build: Callable[[ProviderProfile], _Built], size: int = 16) -> None:
        self._build = build
        self._size = size
        self._entries: dict[int, tuple[ProviderProfile, _Built]] = {}
        self._lock = Lock()

    def get(self, profile: ProviderProfile) -> _Built:
        """Return the value of ``profile``, building it on first use."""
        with self._lock:
            entry = self._entries.get(id(profile))
            if entry is not None and entry[0] is profile:
                return entry[1]

            value = self._build(profile)
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[id(profile)] = (profile, value)
            return value
