"""Settings: one class, read once at the entrypoint and passed down (no module reads os.environ)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shadowlab.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///shadowlab.db"
LogFormat = Literal["text", "json"]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LIMITS_HEARTBEAT_S = 1.0  # defaults of the rate-limit grants (shadowlab.limits)
LIMITS_TIMEOUT_S = 10.0


class Settings(BaseSettings):
    """All of shadowlab's configuration, from `SHADOWLAB_*` environment variables (and `.env`)."""

    model_config = SettingsConfigDict(
        env_prefix="SHADOWLAB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: postgresql+psycopg://user:pw@host:port/db, or sqlite:///file.db",
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    capture_topic: str = Field("llm.captures", description="Topic the tee produces to and ingest reads")
    ingest_max_bytes: int = Field(900 * 1024, gt=0, description="Larger captures are dead-lettered")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout for reaching Postgres and Kafka")
    log_level: str = Field("INFO", description="Python logging level")
    log_format: LogFormat = "text"
    # Provider keys: read without the SHADOWLAB_ prefix, the names the vendors' SDKs use.
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    anthropic_base_url: str | None = Field(
        None, description="Anthropic API base URL (default: the SDK's); the simulator's URL for offline runs"
    )
    openai_base_url: str | None = Field(
        None,
        description="OpenAI-compatible base URL with /v1 (OpenAI, vLLM, Ollama, LiteLLM proxy, simulator)",
    )
    prices_file: Path | None = Field(
        None, description="Price file in LiteLLM's format; its models override the shipped prices.json"
    )
    dashboard_users: Path | None = Field(
        None, description="Dashboard users file (YAML: name, role viewer/decider, bcrypt hash)"
    )
    dashboard_session_minutes: int = Field(
        60, gt=0, description="A dashboard login expires this many minutes after it was made"
    )
    dashboard_trusted_header: str | None = Field(
        None,
        description="Header an authenticating reverse proxy sets to the user name (e.g. X-Forwarded-User)",
    )

    limits_heartbeat_s: float = Field(
        LIMITS_HEARTBEAT_S, gt=0, le=60, description="How often a replay or score worker renews its grants"
    )
    limits_timeout_s: float = Field(
        LIMITS_TIMEOUT_S,
        gt=0,
        le=3600,
        description="A worker silent this long is dead: others get its grants",
    )

    @field_validator("limits_timeout_s")
    @classmethod
    def _check_limits_timeout(cls, value: float, info: ValidationInfo) -> float:
        # A worker must survive a missed heartbeat or two (a slow database), else the live ones expire.
        heartbeat = info.data.get("limits_heartbeat_s")
        if heartbeat is not None and value < 3 * heartbeat:
            raise ValueError(
                f"expected at least 3 x SHADOWLAB_LIMITS_HEARTBEAT_S ({heartbeat:g} s), found {value:g}"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port], found {value!r}")
        return value

    @field_validator("prices_file", "dashboard_users", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # An empty value (a compose file's `${VAR:-}`) would be the working folder, "." — read as a file.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("capture_topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in (".", ".."):
            raise ValueError(
                f"expected a Kafka topic name (1-249 letters, digits, '.', '_', '-'), found {value!r}"
            )
        return value

    @field_validator("anthropic_base_url", "openai_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        # Without a scheme every call would fail, each replay recorded as an error, not the setting refused.
        # Empty is unset (the SDK's own URL), as a compose file's `${VAR:-}` gives it.
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, found {value!r}")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, found {value!r}")
        return value.upper()

    @property
    def database_path(self) -> Path | None:
        """The SQLite file, when the database is SQLite."""
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len(prefix) :])
        return None


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; a malformed value becomes a `ConfigError` naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "settings"
        env = field.upper() if field.endswith("api_key") else f"SHADOWLAB_{field.upper()}"
        # A validator's own ValueError: its message, without pydantic's "Value error, " prefix.
        cause = err.get("ctx", {}).get("error") if err["type"] == "value_error" else None
        raise ConfigError(f"{env}: {cause if cause is not None else err['msg']}") from None
