"""The configuration: one TOML file, overridable by ``ACUSE_...`` environment variables.

``load_settings`` is the only entry point. It reads the file, applies environment overrides
(``ACUSE_DATABASE__URL``, ``ACUSE_DEFAULTS__LOCALE``, ...), validates every key and turns any
problem into a ConfigError that names the key and the fix.
"""

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from config.alert_settings import AlertSettings, ProjectAlertSettings, SmtpSettings
from config.errors import ConfigError
from config.i18n import DEFAULT_LOCALE, N_, _
from config.instance_settings import InstanceSettings
from config.mailbox_settings import MailboxSettings
from config.provider_settings import (
    ProviderProfile,
    ReadingLimits,
    builtin_provider,
    builtin_provider_names,
)
from config.types import (
    Crontab,
    Duration,
    EmailAddress,
    Integer,
    LocaleName,
    Regex,
    Section,
    TimeZoneName,
    duration_range,
)

CONFIG_ENV = "ACUSE_CONFIG"

_T = TypeVar("_T")


_PROJECT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")

# The accepted range of each duration that a project can override. Schedules and timeouts
# start at one second. A deadline shorter than a minute would call every send missing before
# the provider could send its evidence.
Schedule = Annotated[Duration, duration_range("1s", "1d")]
JobTimeout = Annotated[Duration, duration_range("1s", "1d")]
NetworkTimeout = Annotated[Duration, duration_range("1s", "1h")]
Deadline = Annotated[Duration, duration_range("1m", "90d")]
MatchWindowBefore = Annotated[Duration, duration_range("0s", "7d")]
MatchWindowAfter = Annotated[Duration, duration_range("1m", "90d")]


class DatabaseSettings(Section):
    """Where acuse keeps its ledger, sends and matches."""

    url: str = "sqlite:////var/lib/acuse/acuse.db"


class ArchiveSettings(Section):
    """The folder that keeps every raw message, addressed by its SHA-256."""

    path: Path = Path("/var/lib/acuse/archive")


class Defaults(Section):
    """Values each project inherits unless it sets its own."""

    locale: LocaleName = DEFAULT_LOCALE
    timezone: TimeZoneName = "America/Bogota"
    poll_interval: Schedule = timedelta(minutes=5)
    missing_after: Deadline = timedelta(hours=6)
    orphan_after: Deadline = timedelta(hours=24)
    match_window_before: MatchWindowBefore = timedelta(minutes=15)
    match_window_after: MatchWindowAfter = timedelta(hours=6)
    imap_timeout: NetworkTimeout = timedelta(seconds=60)
    fetch_batch: Integer = Field(default=100, ge=1, le=5000)
    reconcile_interval: Schedule = timedelta(minutes=15)
    send_log_interval: Schedule = timedelta(minutes=15)
    job_timeout: JobTimeout = timedelta(minutes=30)


SEND_LOG_FIELDS = (
    "notification_type",
    "negocio",
    "inmueble",
    "client",
    "recipient",
    "lleida_copied",
    "sent_at",
    "subject",
    "external_id",
    "message_id",
)


class SendLogSettings(Section):
    """Where a project's send log comes from and how its columns are named.

    ``path`` is a file or a glob of PACO exports that the daemon watches. ``url`` and ``query``
    name a database and a read-only SQL query whose result columns carry the same names as the
    export's headers. ``interval`` or ``cron`` (in the project's time zone) sets when the
    daemon reads it. ``max_xlsx_bytes`` caps the uncompressed size of an XLSX export and
    ``max_xlsx_shared_strings`` its table of distinct texts, which openpyxl holds in memory
    whole. Both are checked before the workbook is read.
    """

    path: str | None = None
    url: str | None = None
    query: str | None = None
    password_file: str | None = None
    interval: Schedule | None = None
    cron: Crontab | None = None
    columns: dict[str, str] = Field(default_factory=dict)
    date_format: str | None = None
    max_xlsx_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    max_xlsx_shared_strings: int = Field(default=1_000_000, ge=1000)

    @model_validator(mode="after")
    def _one_source(self) -> "SendLogSettings":
        if self.path is not None and self.url is not None:
            message = _("set either path (export files) or url and query (a database), not both")
            raise ValueError(message)
        if (self.url is None) != (self.query is None):
            message = _("url and query go together: set both to read the send log from a database")
            raise ValueError(message)
        if self.password_file is not None and self.url is None:
            message = _("password_file is the database password for url: set url and query too")
            raise ValueError(message)
        if self.interval is not None and self.cron is not None:
            message = _("set either interval or cron, not both")
            raise ValueError(message)
        return self

    @property
    def watched(self) -> bool:
        """Whether the daemon imports this send log on a schedule."""
        return self.path is not None or self.url is not None

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(SEND_LOG_FIELDS))
        if unknown:
            message = _("unknown send-log field {field!r}: use one of {known}").format(
                field=unknown[0], known=", ".join(SEND_LOG_FIELDS)
            )
            raise ValueError(message)
        return value


class ProjectSettings(Section):
    """One PACO project: who is alerted, where its evidence arrives and how it is judged."""

    code: str
    name: str
    timezone: TimeZoneName | None = None
    locale: LocaleName | None = None
    managers: list[EmailAddress] = Field(default_factory=list)
    provider: str = "lleida"
    missing_after: Deadline | None = None
    orphan_after: Deadline | None = None
    poll_interval: Schedule | None = None
    match_window_before: MatchWindowBefore | None = None
    match_window_after: MatchWindowAfter | None = None
    reference_pattern: Regex | None = None
    mailbox: MailboxSettings | None = None
    send_log: SendLogSettings = Field(default_factory=SendLogSettings)
    alerts: ProjectAlertSettings = Field(default_factory=ProjectAlertSettings)

    @field_validator("code")
    @classmethod
    def _valid_code(cls, value: str) -> str:
        if not _PROJECT_CODE.match(value):
            message = _(
                "invalid project code {value!r}: use up to 32 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            ).format(value=value)
            raise ValueError(message)
        return value

    @field_validator("reference_pattern")
    @classmethod
    def _one_group_at_most(cls, value: str | None) -> str | None:
        if value is not None and re.compile(value).groups > 1:
            message = _(
                "reference_pattern {value!r} has more than one group: "
                "keep one group around the reference"
            ).format(value=value)
            raise ValueError(message)
        return value


def _error_at(key: str, message: str) -> PydanticCustomError:
    """Build a model-level validation error that names ``key``, the dotted key at fault."""
    return PydanticCustomError("invalid_setting", message, {"key": key})


class MetricsSettings(Section):
    """The optional Prometheus endpoint of the daemon, as ``host:port``; unset turns it off."""

    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        """The host and port to listen on, or None when the endpoint is off."""
        return None if self.listen is None else split_listen_address(self.listen)


def split_listen_address(value: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6-address]:port``; raise ValueError for anything else."""
    host, separator, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        message = _(
            "invalid listen address {value!r}: write host:port, such as 127.0.0.1:9464"
        ).format(value=value)
        raise ValueError(message)
    return host, int(port)


class Settings(BaseSettings):
    """The whole configuration of one acuse installation."""

    model_config = SettingsConfigDict(
        env_prefix="ACUSE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    defaults: Defaults = Field(default_factory=Defaults)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    limits: ReadingLimits = Field(default_factory=ReadingLimits)
    providers: dict[str, ProviderProfile] = Field(default_factory=dict)
    projects: list[ProjectSettings] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    instances: InstanceSettings = Field(default_factory=InstanceSettings)

    _config_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init arguments; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator("providers", mode="before")
    @classmethod
    def _merge_builtin_providers(cls, value: Any) -> Any:
        # A value of the wrong type passes through unmerged, so that pydantic names its key.
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {}
        for name in builtin_provider_names():
            profile = builtin_provider(name)
            override = value.get(name, {})
            if not isinstance(override, dict):
                profile = override
            elif isinstance(override.get("labels", {}), dict):
                labels = {**profile.get("labels", {}), **override.get("labels", {})}
                profile = {**profile, **override, "labels": labels}
            else:
                profile = {**profile, **override}
            merged[name] = profile
        for name, profile in value.items():
            merged.setdefault(name, profile)
        return merged

    @model_validator(mode="after")
    def _check_projects(self) -> "Settings":
        # Project codes name folders, database rows and alert subjects, and operators type them
        # in either case, so two codes that differ only in case would be the same project.
        first_index: dict[str, int] = {}
        for index, project in enumerate(self.projects):
            folded = project.code.casefold()
            if folded in first_index:
                first = self.projects[first_index[folded]].code
                message = _(
                    "project code {code!r} is already used by projects[{index}] as {first!r}, "
                    "and codes are compared ignoring case: give each project its own code"
                ).format(code=project.code, index=first_index[folded], first=first)
                raise _error_at(f"projects[{index}].code", message)
            first_index[folded] = index
            if project.provider not in self.providers:
                message = _(
                    "unknown provider {provider!r} in project {code!r}: use one of {known}"
                ).format(
                    provider=project.provider,
                    code=project.code,
                    known=", ".join(sorted(self.providers)),
                )
                raise _error_at(f"projects[{index}].provider", message)
        return self

    @property
    def config_dir(self) -> Path:
        """The folder of the configuration file; relative paths are read from it."""
        return self._config_dir

    def project(self, code: str) -> ProjectSettings:
        """Return the project with ``code``; raise ConfigError naming the known codes otherwise."""
        for project in self.projects:
            if project.code == code:
                return project
        known = ", ".join(p.code for p in self.projects) or _("none")
        message = _("Unknown project {code!r}. Configured projects: {known}.").format(
            code=code, known=known
        )
        raise ConfigError(message, key="projects")

    def resolve_path(self, path: Path | str) -> Path:
        """Resolve a path from the configuration against the configuration file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self._config_dir / candidate

    @property
    def archive_path(self) -> Path:
        """The archive folder, resolved against the configuration file's folder."""
        return self.resolve_path(self.archive.path)

    @property
    def database_url(self) -> str:
        """The database URL, with a relative SQLite path resolved against the config folder."""
        prefix = "sqlite:///"
        url = self.database.url
        if (
            url.startswith(prefix)
            and not url.startswith(prefix + "/")
            and url != "sqlite:///:memory:"
        ):
            return prefix + str(self.resolve_path(url[len(prefix) :]))
        return url


class ProjectView:
    """A project's settings with the global defaults filled in where the project sets nothing."""

    def __init__(self, project: ProjectSettings, settings: Settings) -> None:
        self.settings = project
        self._defaults = settings.defaults
        self.limits = settings.limits
        self.provider = _with_resolved_paths(settings.providers[project.provider], settings)

    @property
    def code(self) -> str:
        return self.settings.code

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(_own_or_default(self.settings.timezone, self._defaults.timezone))

    @property
    def locale(self) -> str:
        return _own_or_default(self.settings.locale, self._defaults.locale)

    @property
    def missing_after(self) -> timedelta:
        return _own_or_default(self.settings.missing_after, self._defaults.missing_after)

    @property
    def orphan_after(self) -> timedelta:
        return _own_or_default(self.settings.orphan_after, self._defaults.orphan_after)

    @property
    def poll_interval(self) -> timedelta:
        return _own_or_default(self.settings.poll_interval, self._defaults.poll_interval)

    @property
    def match_window_before(self) -> timedelta:
        return _own_or_default(
            self.settings.match_window_before, self._defaults.match_window_before
        )

    @property
    def match_window_after(self) -> timedelta:
        return _own_or_default(self.settings.match_window_after, self._defaults.match_window_after)

    @property
    def reconcile_interval(self) -> timedelta:
        return self._defaults.reconcile_interval

    @property
    def send_log_interval(self) -> timedelta:
        return _own_or_default(self.settings.send_log.interval, self._defaults.send_log_interval)

    @property
    def job_timeout(self) -> timedelta:
        return self._defaults.job_timeout

    @property
    def imap_timeout(self) -> timedelta:
        mailbox = self.settings.mailbox
        if mailbox is not None and mailbox.timeout is not None:
            return mailbox.timeout
        return self._defaults.imap_timeout


def _own_or_default(own: _T | None, default: _T) -> _T:
    # A zero duration is a value the project chose, so only an unset key falls back.
    return default if own is None else own


def _with_resolved_paths(profile: ProviderProfile, settings: Settings) -> ProviderProfile:
    """Return ``profile`` with its trust roots resolved against the configuration's folder."""
    if not profile.trust_roots:
        return profile
    roots = [settings.resolve_path(path) for path in profile.trust_roots]
    return profile.model_copy(update={"trust_roots": roots})


def project_view(settings: Settings, code: str) -> ProjectView:
    """Return the project ``code`` with defaults applied."""
    return ProjectView(settings.project(code), settings)


def project_views(settings: Settings, code: str | None = None) -> list[ProjectView]:
    """Return every project, or only ``code`` when given, with defaults applied."""
    if code is not None:
        return [project_view(settings, code)]
    return [ProjectView(project, settings) for project in settings.projects]


def config_path_from_environment() -> Path | None:
    """The configuration file named by ``ACUSE_CONFIG``, if set."""
    value = os.environ.get(CONFIG_ENV)
    return Path(value) if value else None


def load_settings(path: Path | None) -> Settings:
    """Read and validate the configuration file at ``path``.

    Without a path, ``ACUSE_CONFIG`` names the file. Raises ConfigError when no file is given,
    the file cannot be read or parsed, or any key is unknown or invalid.
    """
    path = path or config_path_from_environment()
    if path is None:
        message = _("No configuration file given: pass --config FILE or set ACUSE_CONFIG.")
        raise ConfigError(message)

    settings = _validate(_read_toml(path), path)
    settings._config_dir = path.resolve().parent
    return settings


def settings_from_mapping(data: dict[str, Any], config_dir: Path) -> Settings:
    """Validate settings given as a mapping, as if read from a file in ``config_dir``."""
    settings = _validate(data, config_dir / "<mapping>")
    settings._config_dir = config_dir.resolve()
    return settings


def _validate(data: dict[str, Any], path: Path) -> Settings:
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _config_error_from_validation(exc, path) from exc
    except SettingsError as exc:
        # pydantic-settings raises this for an ACUSE_... variable of a table or list section
        # whose value is not valid JSON.
        message = _(
            "Invalid environment override: {error}. Write the value of an ACUSE_ variable "
            "for a table or a list as JSON, or set its keys one by one, such as "
            "ACUSE_DEFAULTS__TIMEZONE."
        ).format(error=exc)
        raise ConfigError(message) from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        message = _(
            "Configuration file {path} not found: check the path given to --config."
        ).format(path=path)
        raise ConfigError(message) from exc
    except OSError as exc:
        message = _("Cannot read configuration file {path}: {error}.").format(
            path=path, error=exc.strerror
        )
        raise ConfigError(message) from exc
    except tomllib.TOMLDecodeError as exc:
        message = _("Configuration file {path} is not valid TOML: {error}.").format(
            path=path, error=exc
        )
        raise ConfigError(message) from exc


def _dotted_key(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(item)
    return ".".join(parts)


# The fixes for pydantic's type errors, by error kind; the placeholders come from its ``ctx``.
_TYPE_ERROR_FIXES = {
    "int_parsing": N_("write a whole number"),
    "int_type": N_("write a whole number"),
    "int_from_float": N_("write a whole number"),
    "float_parsing": N_("write a number"),
    "float_type": N_("write a number"),
    "bool_parsing": N_("write true or false"),
    "bool_type": N_("write true or false"),
    "string_type": N_("write a text in quotes"),
    "list_type": N_('write a list in brackets, such as ["a", "b"]'),
    "dict_type": N_("write a table"),
    "model_type": N_("write a table"),
    "enum": N_("use one of {expected}"),
    "literal_error": N_("use one of {expected}"),
    "greater_than": N_("write a number greater than {gt}"),
    "greater_than_equal": N_("write a number of at least {ge}"),
    "less_than_equal": N_("write a number of at most {le}"),
}


def _config_error_from_validation(exc: ValidationError, path: Path) -> ConfigError:
    """Turn pydantic's first error into one sentence that names the key and the fix."""
    error = exc.errors(include_url=False)[0]
    context = error.get("ctx") or {}
    key = context.get("key") or _dotted_key(tuple(error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        detail = _("unknown key; check its spelling against the configuration reference")
    elif kind == "missing":
        detail = _("required key is missing; add it")
    elif kind in _TYPE_ERROR_FIXES:
        context = dict(error.get("ctx", {}))
        if "expected" in context:
            # pydantic joins the last choice with an English "or"; a plain list suits any language.
            context["expected"] = str(context["expected"]).replace(" or ", ", ")
        fix = _(_TYPE_ERROR_FIXES[kind]).format(**context)
        detail = _("invalid value {value!r}: {fix}").format(value=error.get("input"), fix=fix)
    else:
        # TODO(pydantic has no catalog): error kinds missing from _TYPE_ERROR_FIXES keep
        # pydantic's English text, so add a kind here when users meet it.
        detail = str(error["msg"]).removeprefix("Value error, ")
    message = _("Invalid configuration in {path}: {key}: {detail}.").format(
        path=path, key=key, detail=detail
    )
    return ConfigError(message, key=key)
