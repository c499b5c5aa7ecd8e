"""Typed configuration from environment variables, validated at start-up.

Every problem names the variable, the way the Rust services' `ConfigError` does, and the
process exits before it touches the broker or the disk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(Exception):
    """A variable holds a value the service cannot run with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")


@dataclass(frozen=True)
class KafkaSettings:
    """How the service reaches the broker: the same variables as the Rust services."""

    brokers: str = "127.0.0.1:9092"
    idempotence: bool = False
    group_instance_id: str | None = None
    session_timeout_ms: int = 10_000
    topic_prefix: str = ""

    def topic(self, name: str) -> str:
        """The name on the broker of the logical topic `name`."""
        return f"{self.topic_prefix}{name}"

    def logical_topic(self, physical: str) -> str:
        if self.topic_prefix and physical.startswith(self.topic_prefix):
            return physical[len(self.topic_prefix) :]
        return physical

    def group(self, name: str) -> str:
        # Prefixed like the topics, as the Rust consumers do: deployments sharing a cluster
        # must not share groups.
        return f"{self.topic_prefix}{name}"


@dataclass(frozen=True)
class AuthSettings:
    jwks_url: str | None = None
    jwks_file: Path | None = None
    issuer: str = "studycafe-identity"
    audience: str = "studycafe"
    max_age_s: float = 60.0


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8086
    data_dir: Path = Path("var/notification")
    schemas_dir: Path = Path("shared-events/schemas")
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    shutdown_grace_ms: int = 10_000
    # After SIGTERM, report not ready and keep serving this long before closing, so the
    # gateway's balancer stops sending first (`studycafe up` sets it; Kubernetes uses preStop).
    shutdown_drain_ms: int = 0
    max_attempts: int = 10
    log_format: str = "text"


class _Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name)
        return default if value is None else value

    def optional(self, name: str) -> str | None:
        value = self._env.get(name)
        return value if value else None

    def flag(self, name: str, default: bool) -> bool:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(name, f"{raw!r} is not a boolean (true or false)")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise ConfigError(name, f"{value} is outside {low}..{high}")
        return value


def _address(name: str, raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ConfigError(name, f"{raw!r} must be host:port")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(name, f"{raw!r} has no numeric port") from None
    if not 0 <= number <= 65535:
        raise ConfigError(name, f"port {number} is outside 0..65535")
    return host.strip("[]"), number


def load(environ: Mapping[str, str]) -> Config:
    """Reads and checks every variable; the first bad one raises [`ConfigError`]."""
    env = _Env(environ)
    host, port = _address(
        "NOTIFICATION_HTTP_ADDR", env.text("NOTIFICATION_HTTP_ADDR", "127.0.0.1:8086")
    )

    brokers = env.text("KAFKA_BROKERS", "127.0.0.1:9092")
    if not brokers or any(":" not in b for b in brokers.split(",")):
        raise ConfigError("KAFKA_BROKERS", f"{brokers!r} must be host:port[,host:port…]")
    prefix = env.text("KAFKA_TOPIC_PREFIX", "")
    if not _PREFIX.match(prefix):
        raise ConfigError("KAFKA_TOPIC_PREFIX", "at most 100 letters, digits, '.', '_' or '-'")
    kafka = KafkaSettings(
        brokers=brokers,
        idempotence=env.flag("KAFKA_IDEMPOTENCE", False),
        group_instance_id=env.optional("KAFKA_GROUP_INSTANCE_ID"),
        session_timeout_ms=env.integer("KAFKA_SESSION_TIMEOUT_MS", 10_000, 6_000, 300_000),
        topic_prefix=prefix,
    )

    jwks_url = env.optional("AUTH_JWKS_URL")
    jwks_file = env.optional("AUTH_JWKS_FILE")
    if jwks_url and jwks_file:
        raise ConfigError("AUTH_JWKS_URL", "set either AUTH_JWKS_URL or AUTH_JWKS_FILE, not both")
    if not jwks_url and not jwks_file:
        raise ConfigError(
            "AUTH_JWKS_URL",
            "is required (or AUTH_JWKS_FILE): the public keys tokens are checked against",
        )
    if jwks_url and not jwks_url.startswith(("http://", "https://")):
        raise ConfigError("AUTH_JWKS_URL", "must be an http(s) URL")
    auth = AuthSettings(
        jwks_url=jwks_url,
        jwks_file=Path(jwks_file) if jwks_file else None,
        issuer=env.text("AUTH_ISSUER", "studycafe-identity"),
        audience=env.text("AUTH_AUDIENCE", "studycafe"),
        max_age_s=float(env.integer("AUTH_JWKS_MAX_AGE_SECS", 60, 1, 86_400)),
    )

    data_dir = Path(env.text("NOTIFICATION_DATA_DIR", "var/notification"))
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError("NOTIFICATION_DATA_DIR", f"{data_dir} exists and is not a directory")
    schemas_dir = Path(env.text("NOTIFICATION_SCHEMAS_DIR", str(_default_schemas_dir())))
    if not schemas_dir.is_dir() or not any(schemas_dir.glob("*.schema.json")):
        raise ConfigError(
            "NOTIFICATION_SCHEMAS_DIR", f"{schemas_dir} holds no *.schema.json event schemas"
        )
    log_format = env.text("LOG_FORMAT", "text")
    if log_format not in ("text", "json"):
        raise ConfigError("LOG_FORMAT", f"{log_format!r} is neither text nor json")

    return Config(
        host=host,
        port=port,
        data_dir=data_dir,
        schemas_dir=schemas_dir,
        kafka=kafka,
        auth=auth,
        shutdown_grace_ms=env.integer("NOTIFICATION_SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
        shutdown_drain_ms=env.integer("SHUTDOWN_DRAIN_MS", 0, 0, 60_000),
        max_attempts=env.integer("NOTIFICATION_MAX_ATTEMPTS", 10, 1, 1000),
        log_format=log_format,
    )


def _default_schemas_dir() -> Path:
    """The repository's `shared-events/schemas`, found from this file's place in the tree."""
    return Path(__file__).resolve().parents[4] / "shared-events" / "schemas"
