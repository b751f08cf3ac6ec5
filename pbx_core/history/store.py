"""The history's SQL side: upsert rows by their natural key, read back open rows, day totals.

An upsert (INSERT .. ON CONFLICT DO UPDATE, on SQLite and PostgreSQL alike) writes the whole row:
the same entry folded twice yields the same row, so a redelivered batch changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ..provisioning.models import HistoryAgentSession, HistoryCall
from .core import (
    ABANDONED,
    ANSWERED,
    CALL_FIELDS,
    EXITED,
    RING_NO_ANSWER,
    SESSION_FIELDS,
    SHORT_ABANDON,
    WAITING,
    CallKey,
    CallRow,
    SessionKey,
    SessionRow,
)

CALL_KEY = ("tenant", "epoch", "queue", "uniqueid")
SESSION_KEY = ("tenant", "epoch", "queue", "interface", "kind", "started_at")
_CHUNK = 500  # rows per statement (SQLite caps bound parameters per statement)


def _insert(session: AsyncSession, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise ValueError(f"history needs SQLite or PostgreSQL, not {dialect}")


def _placeholders(paramstyle: str, n: int) -> list[str]:
    if paramstyle == "qmark":
        return ["?"] * n
    if paramstyle in ("format", "pyformat"):
        return ["%s"] * n
    if paramstyle in ("numeric_dollar",):
        return [f"${i}" for i in range(1, n + 1)]
    if paramstyle == "numeric":
        return [f":{i}" for i in range(1, n + 1)]
    raise ValueError(f"unsupported DB-API paramstyle {paramstyle}")


async def _upsert(
    session: AsyncSession, model: Any, rows: list[dict[str, Any]], key: tuple[str, ...]
) -> None:
    """INSERT .. ON CONFLICT (key) DO UPDATE, the same text on SQLite and PostgreSQL, run as one
    driver-level executemany: SQLAlchemy's per-row parameter handling costs more than the
    database's work here (measured by ``pbx-core bench history``)."""
    if not rows:
        return
    conn = await session.connection()
    dialect = conn.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        raise ValueError(f"history needs SQLite or PostgreSQL, not {dialect.name}")
    columns = list(rows[0])
    marks = _placeholders(dialect.paramstyle, len(columns))
    table = model.__tablename__
    updates = ", ".join(_set(table, c) for c in columns if c not in key)
    sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marks)}) "
           f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}")  # fmt: skip
    await conn.exec_driver_sql(sql, [tuple(r[c] for c in columns) for r in rows])


# An anonymised (retention) or erased call keeps its blanks when the writer rewrites the row from
# what it still held in memory (a call in progress when its number was erased).
_STICKY = {
    "number": "CASE WHEN {t}.anonymised THEN {t}.number ELSE excluded.number END",
    "name": "CASE WHEN {t}.anonymised THEN {t}.name ELSE excluded.name END",
    "anonymised": "{t}.anonymised OR excluded.anonymised",
}


def _set(table: str, column: str) -> str:
    if table == "history_calls" and column in _STICKY:
        return f"{column} = " + _STICKY[column].format(t=table)
    return f"{column} = excluded.{column}"


async def write(session: AsyncSession, calls: list[CallRow], sessions: list[SessionRow]) -> None:
    """Upsert the rows (the caller commits). Calls are sorted by key: two writers' transactions
    never lock the same rows in opposite orders."""
    ordered = sorted(calls, key=lambda r: (r.tenant, r.queue, r.uniqueid))
    await _upsert(session, HistoryCall, [_fit(HistoryCall, r.as_dict()) for r in ordered], CALL_KEY)
    await _upsert(
        session, HistoryAgentSession, [_fit(HistoryAgentSession, s.as_dict()) for s in sessions], SESSION_KEY
    )


def _limits(model: Any) -> dict[str, int]:
    return {c.name: c.type.length for c in model.__table__.columns if getattr(c.type, "length", None)}


_LIMITS = {HistoryCall: _limits(HistoryCall), HistoryAgentSession: _limits(HistoryAgentSession)}


def _fit(model: Any, row: dict[str, Any]) -> dict[str, Any]:
    """Strings cut to their column's length: PostgreSQL refuses a longer one, and a refused row
    would hold up its whole batch for ever (a caller name is whatever the PBX sent)."""
    for column, limit in _LIMITS[model].items():
        value = row.get(column)
        if isinstance(value, str) and len(value) > limit:
            row[column] = value[:limit]
    return row


TenantKey = tuple[str, int]  # tenant, epoch


async def load(
    session: AsyncSession, wanted: dict[TenantKey, tuple[set[CallKey], set[SessionKey]]]
) -> dict[TenantKey, tuple[list[CallRow], list[SessionRow]]]:
    """For each tenant, the stored rows of the wanted calls and the *open* sessions among the
    wanted ones: two queries for every tenant of a batch together."""
    out: dict[TenantKey, tuple[list[CallRow], list[SessionRow]]] = {key: ([], []) for key in wanted}
    calls = {(t, e, q, uid) for (t, e), (keys, _) in wanted.items() for q, uid in keys}
    uids = sorted({uid for *_, uid in calls})
    for i in range(0, len(uids), _CHUNK):
        result = await session.execute(
            select(*(getattr(HistoryCall, f) for f in CALL_FIELDS)).where(
                HistoryCall.uniqueid.in_(uids[i : i + _CHUNK])
            )
        )
        for row in result:
            if (row.tenant, row.epoch, row.queue, row.uniqueid) in calls:
                out[(row.tenant, row.epoch)][0].append(CallRow(**row._asdict()))
    sessions = {(t, e, q, iface, kind) for (t, e), (_, keys) in wanted.items() for q, iface, kind in keys}
    tenants = sorted({t for t, *_ in sessions})
    for i in range(0, len(tenants), _CHUNK):
        result = await session.execute(
            select(*(getattr(HistoryAgentSession, f) for f in SESSION_FIELDS)).where(
                HistoryAgentSession.tenant.in_(tenants[i : i + _CHUNK]),
                HistoryAgentSession.ended_at.is_(None),
            )
        )
        for row in result:
            if (row.tenant, row.epoch, row.queue, row.interface, row.kind) in sessions:
                out[(row.tenant, row.epoch)][1].append(SessionRow(**row._asdict()))
    return out


async def totals(
    session: AsyncSession,
    tenant: str,
    service_level_s: dict[str, int],
    since: float | None = None,
    until: float | None = None,
) -> dict[str, dict[str, int]]:
    """Per queue, the engine's day counters (``domain.kpi.Counters`` names, plus ``waiting``)
    computed from the rows: what reports build on, and what the tests hold against the engine.
    ``service_level_s``: per queue (missing: 30)."""
    c = HistoryCall
    in_range = [c.tenant == tenant]
    if since is not None:
        in_range.append(or_(c.joined_at >= since, and_(c.joined_at.is_(None), c.completed_at >= since)))
    if until is not None:
        in_range.append(or_(c.joined_at < until, and_(c.joined_at.is_(None), c.completed_at < until)))
    result = await session.execute(
        select(
            c.queue,
            c.outcome,
            c.joined_at.is_not(None),
            c.waited_s,
            c.completed_at.is_not(None),
            c.talk_s,
            c.wrapup_s,
        ).where(*in_range)
    )
    out: dict[str, dict[str, int]] = {}

    def of(queue: str) -> dict[str, int]:
        if queue not in out:
            out[queue] = dict.fromkeys(
                (
                    "offered",
                    "answered",
                    "abandoned",
                    "short_abandoned",
                    "answered_within_sl",
                    "other_exits",
                    "answered_wait_s",
                    "longest_wait_s",
                    "handled",
                    "talk_s",
                    "wrapup_s",
                    "ring_no_answer",
                    "waiting",
                ),
                0,
            )
        return out[queue]

    for queue, outcome, offered, waited, completed, talk, wrapup in result:
        t = of(queue)
        wait = waited or 0
        if offered:
            t["offered"] += 1
            if outcome == ANSWERED:
                t["answered"] += 1
                t["answered_wait_s"] += wait
                t["answered_within_sl"] += wait <= service_level_s.get(queue, 30)
            elif outcome in (ABANDONED, SHORT_ABANDON):
                t["abandoned"] += 1
                t["short_abandoned"] += outcome == SHORT_ABANDON
            elif outcome == EXITED:
                t["other_exits"] += 1
            elif outcome == WAITING:
                t["waiting"] += 1
            if outcome != WAITING and outcome != EXITED:
                t["longest_wait_s"] = max(t["longest_wait_s"], wait)
        if completed:
            t["handled"] += 1
            t["talk_s"] += talk or 0
            t["wrapup_s"] += wrapup or 0
    s = HistoryAgentSession
    rna = [s.tenant == tenant, s.kind == RING_NO_ANSWER]
    if since is not None:
        rna.append(s.started_at >= since)
    if until is not None:
        rna.append(s.started_at < until)
    for queue, n in await session.execute(select(s.queue, func.count()).where(*rna).group_by(s.queue)):
        of(queue)["ring_no_answer"] = int(n)
    return out


async def anonymise(session: AsyncSession, before: float) -> int:
    """Calls that joined (or, never seen joining, ended) before ``before`` lose the caller's
    number and name; the rest of the row stays for the reports. Returns how many rows changed
    (the caller commits)."""
    c = HistoryCall
    old = or_(c.joined_at < before, and_(c.joined_at.is_(None), c.completed_at < before))
    result = await session.execute(
        update(c).where(old, c.anonymised.is_(False)).values(number="", name="", anonymised=True)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
