"""Settings from ``FIT_*`` environment variables, validated once at start-up.

Nothing here connects to anything: ``create_app`` builds the engine from these values, so tests
pass their own :class:`Settings` and no import has side effects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_TRUE = {"1", "true", "yes", "on"}
#: FIT_ variables read by the tooling (./dev, the test suite), not by the service itself.
TOOLING_VARIABLES = frozenset(
    {
        "FIT_HOST",
        "FIT_PORT",
        "FIT_WORKERS",
        "FIT_VENV",
        "FIT_TEST_POSTGRES_URL",
        "FIT_TEST_BACKENDS",
    }
)
_FALSE = {"0", "false", "no", "off", ""}
#: C0 controls and DEL: in FIT_SMTP_FROM a CR/LF would start a header of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: local@domain, neither part empty, no whitespace or characters that would make it more
#: than one plain address (a display name, a second address, a comment).
_ADDRESS = re.compile(r"[^@\s<>()\[\]\\,;:\"]+@[^@\s<>()\[\]\\,;:\"]+\Z")


#: Largest FIT_MAX_PAGE_SIZE: a list page is built in memory, as one response.
MAX_PAGE_SIZE_LIMIT = 10_000
#: Largest FIT_KEY_CACHE_SECONDS: an hour for a revocation to reach every running server.
KEY_CACHE_SECONDS_LIMIT = 3600


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and the rule."""


def _default_instance_path() -> Path:
    return Path(__file__).resolve().parent.parent / "instance"


@dataclass(frozen=True)
class Settings:
    """Every knob of the service. Field docs double as the README's configuration table."""

    #: SQLAlchemy URL. Default: an SQLite file in the instance folder (zero set-up).
    #: Production: ``postgresql+psycopg://user:pass@host/db``.
    database_url: str = ""
    #: Folder for the default SQLite file and other local state.
    instance_path: Path = field(default_factory=_default_instance_path)
    #: Largest request body accepted, in bytes (larger: 413).
    max_body_bytes: int = 8 * 1024 * 1024
    #: Most sessions in one batch call (more: 413).
    max_batch_items: int = 5000
    #: Default and largest page size of list endpoints.
    page_size: int = 50
    max_page_size: int = 500
    #: Seconds a verified API key is remembered per process (0 disables the cache). A key
    #: revoked elsewhere stops working in this process after at most this long.
    key_cache_seconds: int = 10
    #: Where the CLI archives monthly reports.
    reports_dir: Path = field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "reports"
    )
    #: Allow webhook URLs that resolve to private or loopback addresses (tests, on-prem).
    webhooks_allow_private: bool = False
    #: SMTP relay for clinician e-mail; empty host disables e-mail.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "fit-service@localhost"
    #: STARTTLS after connecting (usually port 587), or TLS from the first byte (SMTPS, usually
    #: port 465): one or the other, and one of them whenever a username and password are set.
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    #: Base URL used in e-mails so a clinician can look an alert up.
    public_base_url: str = "http://localhost:5000"
    #: Log level of the service's own loggers.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{Path(self.instance_path) / 'fit.sqlite3'}"
            )
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise ConfigError(
                "FIT_DATABASE_URL must be an sqlite:/// or postgresql+psycopg:// URL; "
                f"got scheme {self.database_url.split(':', 1)[0]!r}"
            )
        self._check_database_url()
        for name in ("max_body_bytes", "max_batch_items", "page_size", "max_page_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"FIT_{name.upper()} must be a positive integer")
        if self.max_page_size > MAX_PAGE_SIZE_LIMIT:
            # A LIMIT past the database's integer range was a 500 on every list endpoint, and
            # far below that one page would hold the process's memory.
            raise ConfigError(
                f"FIT_MAX_PAGE_SIZE must be at most {MAX_PAGE_SIZE_LIMIT}; got {self.max_page_size}"
            )
        if self.page_size > self.max_page_size:
            raise ConfigError("FIT_PAGE_SIZE must not exceed FIT_MAX_PAGE_SIZE")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError("FIT_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")
        if self.key_cache_seconds < 0:
            raise ConfigError("FIT_KEY_CACHE_SECONDS must be 0 (no cache) or a positive integer")
        if self.key_cache_seconds > KEY_CACHE_SECONDS_LIMIT:
            # A revoked key keeps working this long in every running server (and a value past
            # a float's range failed every authenticated request).
            raise ConfigError(
                f"FIT_KEY_CACHE_SECONDS must be at most {KEY_CACHE_SECONDS_LIMIT} (a revoked key "
                "works in running servers for up to this long)"
            )
        self._check_smtp()
        self._check_public_base_url()
        for var, folder in (
            ("FIT_INSTANCE_PATH", Path(self.instance_path)),
            ("FIT_REPORTS_DIR", Path(self.reports_dir)),
        ):
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"{var} must be a folder; {folder} is not")

    def _check_public_base_url(self) -> None:
        """E-mails link to alerts under this URL: without a scheme and host every link a
        clinician gets is broken, and nothing else would notice. A user name or password in
        it would be in every e-mail, so it is refused and not echoed."""
        try:
            parts = urlsplit(self.public_base_url)
            _ = parts.port  # ValueError for a port that is not a number in 0-65535
            ok = (
                parts.scheme in {"http", "https"}
                and bool(parts.hostname)
                and not _CONTROL.search(self.public_base_url)
                and not parts.query
                and not parts.fragment
            )
            credentials = parts.username is not None or parts.password is not None
        except ValueError:  # an unbalanced IPv6 bracket, a bad port
            ok, credentials = False, False
        if credentials:
            raise ConfigError("FIT_PUBLIC_BASE_URL must not hold a user name or password")
        if not ok:
            raise ConfigError(
                "FIT_PUBLIC_BASE_URL must be an http:// or https:// URL with a host (no query "
                f"or fragment), e.g. https://fit.clinic.example; got {self.public_base_url!r}"
            )

    def _check_database_url(self) -> None:
        """A URL the engine could not use fails here, by name, rather than as a traceback from
        SQLAlchemy (a malformed port) or an import error (another PostgreSQL driver). An
        in-memory SQLite database would lose every record when the process ends (and each
        connection would see a database of its own)."""
        try:
            url = make_url(self.database_url)
        except (ArgumentError, ValueError):
            # Not the URL itself in the message: it may hold a password.
            raise ConfigError("FIT_DATABASE_URL is not a valid database URL") from None
        if not self.is_sqlite:
            if url.drivername != "postgresql+psycopg":
                raise ConfigError(
                    "FIT_DATABASE_URL for PostgreSQL must use the psycopg 3 driver: "
                    f"postgresql+psycopg://…; got {url.drivername!r}"
                )
            return
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            raise ConfigError(
                "FIT_DATABASE_URL must name an SQLite file (sqlite:///path/fit.sqlite3): "
                "an in-memory database loses all data when the process ends"
            )

    def _check_smtp(self) -> None:
        """Settings that would make every e-mail fail (or go out other than intended)."""
        if self.smtp_host and (not self.smtp_host.isprintable() or " " in self.smtp_host):
            raise ConfigError(
                "FIT_SMTP_HOST must be a host name or address without spaces (empty: e-mail "
                f"off); got {self.smtp_host!r}"
            )
        if not 1 <= self.smtp_port <= 65535:
            raise ConfigError(
                f"FIT_SMTP_PORT must be a port number (1-65535); got {self.smtp_port}"
            )
        if _CONTROL.search(self.smtp_from):
            raise ConfigError(
                "FIT_SMTP_FROM must not contain control characters (a line break would start "
                "another mail header)"
            )
        if not (self.smtp_from.isascii() and _ADDRESS.match(self.smtp_from)):
            # Bare and ASCII: the Message-ID takes its domain from it, and a non-ASCII sender
            # needs SMTPUTF8, which many relays refuse (every e-mail would then fail).
            raise ConfigError(
                "FIT_SMTP_FROM must be a plain ASCII e-mail address such as fit@clinic.example "
                f"(no display name); got {self.smtp_from!r}"
            )
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ConfigError(
                "FIT_SMTP_USERNAME and FIT_SMTP_PASSWORD go together: set both to log in to the "
                "relay, or neither"
            )
        if not (self.smtp_username + self.smtp_password).isascii():
            # smtplib encodes every login (PLAIN, LOGIN, CRAM-MD5) as ASCII: each e-mail would
            # fail. Not echoed: it is a credential.
            raise ConfigError(
                "FIT_SMTP_USERNAME and FIT_SMTP_PASSWORD must be ASCII: the SMTP login cannot "
                "carry other characters"
            )
        if self.smtp_starttls and self.smtp_tls:
            raise ConfigError(
                "FIT_SMTP_STARTTLS and FIT_SMTP_TLS exclude each other: STARTTLS upgrades a "
                "plain connection (usually port 587), FIT_SMTP_TLS is TLS from the start "
                "(usually port 465); set the one the relay offers"
            )
        if self.smtp_username and not (self.smtp_starttls or self.smtp_tls):
            # The login would cross the network in clear: the relay's password, and then every
            # message, readable by anyone on the path.
            raise ConfigError(
                "FIT_SMTP_USERNAME and FIT_SMTP_PASSWORD need FIT_SMTP_STARTTLS=true or "
                "FIT_SMTP_TLS=true: the password must not be sent in clear"
            )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``FIT_<FIELD>`` for every field; unknown ``FIT_`` variables are an error,
        because a typo (``FIT_DATABSE_URL``) silently ignored would run against the wrong DB."""
        env = os.environ if environ is None else environ
        known = {f"FIT_{f.name.upper()}": f for f in fields(cls)}
        unknown = sorted(
            k for k in env if k.startswith("FIT_") and k not in known and k not in TOOLING_VARIABLES
        )
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, object] = {}
        for var, f in known.items():
            if var not in env:
                continue
            raw = env[var]
            values[f.name] = _parse(var, raw, cls.__dataclass_fields__[f.name].default)
        return cls(**values)  # type: ignore[arg-type]

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _parse(var: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{var} must be true or false; got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{var} must be an integer; got {raw!r}") from None
    if var in {"FIT_INSTANCE_PATH", "FIT_REPORTS_DIR"}:
        if not raw.strip():
            # Path("") is the current directory: wherever the command happened to run.
            raise ConfigError(f"{var} must not be empty (unset it for the default)")
        return Path(raw)
    return raw
