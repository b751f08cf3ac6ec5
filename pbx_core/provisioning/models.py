"""SQL tables of the provisioning model (SQLAlchemy 2, typed declarative).

Relational where integrity matters (a duplicate extension, a DID routed twice, a member of a
queue that does not exist are all refused by the database itself); JSON where the value is a
small document always read and written whole (a menu's options, a schedule's opening spans, a
destination). Those JSON documents are validated by :mod:`.schemas` before they are stored.

Every mutable row has ``version`` (SQLAlchemy's optimistic-concurrency counter): it is also the
ETag the API hands out, so a stale ``If-Match`` and a lost update are the same check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship

# Stable constraint names: Alembic migrations and both databases agree on them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Timestamped:
    """created/updated stamps and the optimistic-concurrency ``version`` (the API's ETag)."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


class Reseller(Base):
    __tablename__ = "resellers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tenants: Mapped[list[Tenant]] = relationship(back_populates="reseller")


class Tenant(Timestamped, Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id", ondelete="RESTRICT"), index=True)
    slug: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    operator: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    outbound_caller_id: Mapped[str | None] = mapped_column(String(16))

    reseller: Mapped[Reseller] = relationship(back_populates="tenants")


class User(Timestamped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "extension"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    extension: Mapped[str] = mapped_column(String(6))
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))

    devices: Mapped[list[Device]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="Device.name"
    )


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(12))
    kind: Mapped[str] = mapped_column(String(16))
    # Asterisk needs the password itself (or its MD5 digest) to authenticate the device, and the
    # reseller needs it to provision the phone: stored as generated, never logged.
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship(back_populates="devices")


class Queue(Timestamped, Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    # Everything else of QueueIn (strategy, timers, announcements, callback offer, thresholds).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)

    members: Mapped[list[QueueMember]] = relationship(
        back_populates="queue", cascade="all, delete-orphan"
    )


class QueueMember(Base):
    __tablename__ = "queue_members"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    penalty: Mapped[int] = mapped_column(Integer, default=0)

    queue: Mapped[Queue] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Menu(Timestamped, Base):
    __tablename__ = "menus"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    # MenuIn: prompt, options, timeouts, repeat counts, operator switch, schedule.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)


class BusinessHours(Timestamped, Base):
    __tablename__ = "business_hours"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    # HoursIn: weekly spans, holidays, open/closed destinations, closed message.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)


class Did(Timestamped, Base):
    __tablename__ = "dids"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Globally unique: one number routes to one place, whichever tenant asks.
    number: Mapped[str] = mapped_column(String(16), unique=True)
    destination: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(80))


class PauseReason(Timestamped, Base):
    __tablename__ = "pause_reasons"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(80))
    paid: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public id shown in lists and the first part of the key (``pbx_{public_id}_{secret}``):
    # lookup by it, then compare the hash in constant time.
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16))
    reseller_id: Mapped[int] = mapped_column(ForeignKey("resellers.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    queues: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The key's public id and name at the time: the row survives the key's deletion.
    actor: Mapped[str] = mapped_column(String(120))
    reseller_id: Mapped[int | None] = mapped_column(ForeignKey("resellers.id", ondelete="SET NULL"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(32))
    entity_key: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApplyRun(Base):
    """One render + apply of a tenant's Asterisk configuration, and how it went."""

    __tablename__ = "apply_runs"
    __table_args__ = (Index("ix_apply_runs_tenant_started", "tenant_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed | unchanged
    changed_files: Mapped[list[Any] | None] = mapped_column(JSON)
    reloads: Mapped[list[Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class ServerSecret(Base):
    """A random key for signing short-lived wallboard tokens, made on first use, so every web
    replica that shares the database verifies the same tokens (PBX_SECRET_KEY overrides it)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))


# --- callbacks ----------------------------------------------------------------------------------

# A callback is open while it waits or an attempt is in flight (pbx_core.callbacks.core.model.OPEN);
# the partial unique index below allows one open callback per number and queue.
_OPEN_CALLBACK = text("status IN ('pending', 'overdue', 'dialling')")


class CallbackRow(Base):
    """One callback: the persisted :class:`pbx_core.callbacks.core.model.Callback` record.

    Times of the record are epoch seconds stored as double precision, exactly as the pure core
    holds them: an 8-byte IEEE float on both PostgreSQL and SQLite, so a record read back after a
    restart is bit-for-bit the one saved (a timestamp column would round to microseconds and come
    back zone-less from SQLite). ``created_at``/``updated_at`` are the row's own bookkeeping."""

    __tablename__ = "callbacks"
    __table_args__ = (
        Index("uq_callbacks_open_number", "tenant_id", "queue", "number", unique=True,
              postgresql_where=_OPEN_CALLBACK, sqlite_where=_OPEN_CALLBACK),
        # The worker's load of open callbacks and the API's lists (by status, newest first).
        Index("ix_callbacks_tenant_status_requested", "tenant_id", "status", "requested_at"),
        Index("ix_callbacks_tenant_requested", "tenant_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(32))  # short name, as in the record
    number: Mapped[str] = mapped_column(String(32))  # normalised: digits and a leading +
    name: Mapped[str | None] = mapped_column(String(80))
    note: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    tier: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[float] = mapped_column(Double)
    place_at: Mapped[float] = mapped_column(Double)
    due_by: Mapped[float] = mapped_column(Double)  # the end of the promised window
    promised_from: Mapped[float | None] = mapped_column(Double)  # ... and its start
    not_before: Mapped[float] = mapped_column(Double)
    attempts: Mapped[int] = mapped_column(Integer)
    attempts_dialled: Mapped[int] = mapped_column(Integer)
    originate_id: Mapped[str | None] = mapped_column(String(80))
    agent: Mapped[str | None] = mapped_column(String(120))
    dialled_at: Mapped[float | None] = mapped_column(Double)
    closed_at: Mapped[float | None] = mapped_column(Double)
    last_result: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class CallbackAttempt(Base):
    """History of a callback: one row per saved change (created, dialling, retry, completed, ...)."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Double)  # epoch seconds, like the record's times
    change: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[str | None] = mapped_column(String(24))
    originate_id: Mapped[str | None] = mapped_column(String(80))
    agent: Mapped[str | None] = mapped_column(String(120))


class HistoryCall(Base):
    """One queue call, written by the history writer (``pbx_core.history``) from the bus.

    Keyed by the tenant's slug and bus epoch (a deleted tenant's slug may be reused; its calls
    keep the old epoch), the queue and Asterisk's uniqueid (first in the key: the writer looks
    calls up by uniqueid): a redelivered stream entry rewrites the same row with the same values.
    Times are epoch seconds on the PBX's clock, like the callbacks'. ``joined_at`` is NULL for a
    call first seen at its end (answered before the bridge was watching): the engine does not
    count it offered either."""

    __tablename__ = "history_calls"
    __table_args__ = (
        UniqueConstraint("uniqueid", "queue", "tenant", "epoch", name="uq_history_calls_key"),
        # Reports: a tenant's (or a queue's) calls in a time range; a number's calls (repeat
        # callers, erasure).
        Index("ix_history_calls_tenant_joined", "tenant", "joined_at"),
        Index("ix_history_calls_tenant_queue_joined", "tenant", "queue", "joined_at"),
        Index("ix_history_calls_tenant_number", "tenant", "number", "joined_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(80))
    uniqueid: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(120))
    did: Mapped[str | None] = mapped_column(String(80))  # not on the bus yet
    ivr_path: Mapped[str | None] = mapped_column(String(200))  # not on the bus yet
    joined_at: Mapped[float | None] = mapped_column(Double)
    position: Mapped[int | None] = mapped_column(Integer)  # place in line on entry
    announced_wait_s: Mapped[int | None] = mapped_column(Integer)  # not on the bus yet
    # waiting (still in line when written), answered, abandoned, short_abandon, exited (left the
    # queue unanswered without hanging up: timeout, exit key, callback offer; or vanished).
    outcome: Mapped[str] = mapped_column(String(16))
    waited_s: Mapped[int | None] = mapped_column(Integer)  # Asterisk's HoldTime at answer/abandon
    ended_at: Mapped[float | None] = mapped_column(Double)  # when it left the queue
    agent: Mapped[str | None] = mapped_column(String(120))  # the member interface that answered
    agent_name: Mapped[str | None] = mapped_column(String(120))
    talk_s: Mapped[int | None] = mapped_column(Integer)  # set by AgentComplete
    wrapup_s: Mapped[int | None] = mapped_column(Integer)
    completed_at: Mapped[float | None] = mapped_column(Double)
    end_reason: Mapped[str | None] = mapped_column(String(24))  # AgentComplete's: caller, agent, transfer
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    anonymised: Mapped[bool] = mapped_column(Boolean, default=False)


class HistoryAgentSession(Base):
    """An agent's time in a queue: ``login`` (added .. removed), ``pause`` (paused .. unpaused,
    with the reason) or ``ring_no_answer`` (a missed ring; ``uniqueid`` names the call).
    ``ended_at`` is NULL while the session is open. Unique per start, so redelivery is harmless."""

    __tablename__ = "history_agent_sessions"
    __table_args__ = (
        UniqueConstraint("tenant", "epoch", "queue", "interface", "kind", "started_at",
                         name="uq_history_agent_sessions_key"),
        Index("ix_history_agent_sessions_tenant_started", "tenant", "started_at"),
        Index("ix_history_agent_sessions_tenant_ended", "tenant", "ended_at"),  # the open ones
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(16))
    epoch: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(80))
    interface: Mapped[str] = mapped_column(String(120))
    agent_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str | None] = mapped_column(String(80))  # pause reason
    uniqueid: Mapped[str | None] = mapped_column(String(64))  # ring_no_answer: the call
    ring_ms: Mapped[int | None] = mapped_column(Integer)
